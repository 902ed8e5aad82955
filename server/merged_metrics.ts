/**
 * Several registries' Prometheus text expositions as one: what `/metrics` answers under
 * `WORKERS`, each worker's samples told apart by their `worker` label.
 *
 * @module
 */

interface Family {
  readonly comments: string[];
  readonly samples: string[];
}

/**
 * Merges expositions family by family: each metric family once, with one `# HELP` and one
 * `# TYPE` line (the text format allows no more) and the samples of every exposition under it,
 * in the order given. Families keep the order in which they first appear.
 *
 * The samples must differ by a label (`worker`): equal series in two expositions would be
 * duplicates, which scrapers refuse.
 *
 * @example
 * ```ts
 * const text = mergeExpositions([await worker0.render(), await worker1.render()]);
 * ```
 */
export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, Family>();
  for (const text of texts) {
    let family: Family | undefined;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const comment = /^# (HELP|TYPE) (\S+)/.exec(line);
      const name = comment?.[2] ?? metricName(line);
      // A sample belongs to the family of the comments above it (a histogram's `_bucket`,
      // `_sum` and `_count` have other names than their family).
      if (comment || family === undefined) family = familyOf(families, name);
      if (!comment) family.samples.push(line);
      else if (!family.comments.some((seen) => seen.startsWith(`# ${comment[1]} `))) {
        family.comments.push(line);
      }
    }
  }
  // Laid out as prom-client lays out one registry: families apart by a blank line.
  return [...families.values()]
    .map(({ comments, samples }) => [...comments, ...samples].join("\n") + "\n")
    .join("\n");
}

function familyOf(families: Map<string, Family>, name: string): Family {
  let family = families.get(name);
  if (family === undefined) {
    family = { comments: [], samples: [] };
    families.set(name, family);
  }
  return family;
}

/** The metric name a sample line starts with. */
function metricName(line: string): string {
  return /^[^{\s]+/.exec(line)?.[0] ?? line;
}

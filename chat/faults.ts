/**
 * Reporting a contained fault: logged once with its code and counted, without ever throwing
 * itself (the logger or the metrics may be what failed).
 *
 * @module
 */
import { errorCode } from "../log/error_code.ts";
import type { LogFields, Logger } from "../log/logger.ts";
import type { ChatMetrics, FaultSite } from "./chat_metrics.ts";

/** Logs `event` at error level with the error's code, and counts it at `site`. */
export function reportFault(
  deps: { readonly logger: Logger; readonly metrics: ChatMetrics },
  site: FaultSite,
  event: string,
  error: unknown,
  fields: LogFields = {},
): void {
  try {
    deps.metrics.faultContained(site);
  } catch {
    // Counting failed too: the log line below still says it.
  }
  try {
    deps.logger.error(event, { ...fields, error: errorCode(error) });
  } catch {
    // The logger is what failed: nothing is left to tell.
  }
}

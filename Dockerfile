# The chat server as one compiled executable on a distroless glibc base. See docs/deployment.md.
#
#   docker build -t chat-server .
#   docker run --rm -p 8080:8080 chat-server
#
# The build needs internet: npm packages (from deno.lock) and Deno's runtime binary (denort),
# which `deno compile` downloads once per build.

ARG DENO_VERSION=2.9.6

# ---------------------------------------------------------------------------------------------
# Stage 1: compile
# ---------------------------------------------------------------------------------------------
# denoland/deno tags are "<variant>-<version>" (debian-, alpine-, distroless-, ubuntu-, bin-);
# the bare "<version>" tag is an alias of the Debian one. Name the variant: a glibc builder, so
# the smoke test below runs the executable on the same libc family as the runtime stage.
FROM denoland/deno:debian-${DENO_VERSION} AS build

WORKDIR /app

# deno.lock pins exactly what main.ts imports (the test tools have their own, tests/deno.lock).
# --frozen: a deno.lock that does not match main.ts's module graph fails the build instead of
# being rewritten. Installing by entrypoint fetches only the server's packages.
COPY . .
# Compile with the project's own task, so the permission flags (--allow-net --allow-env) and the
# output path (dist/chat-server) are defined in one place (tools/compile.ts). The client page is
# a text import of server/client_page.ts, so it is embedded in the executable.
RUN deno install --frozen --lock=deno.lock --entrypoint main.ts \
 && deno task compile

# Smoke test of the executable: with a bad PORT it must load every embedded module, then exit 2
# with its one-line configuration error, before it opens a port or a database connection.
RUN out="$(PORT=invalid ./dist/chat-server 2>&1)"; code=$?; \
    case "$code:$out" in \
      "2:"*"error: PORT "*) echo "smoke test passed: $out" ;; \
      *) echo "smoke test failed: exit $code, output: $out" >&2; exit 1 ;; \
    esac

# ---------------------------------------------------------------------------------------------
# Stage 2: runtime
# ---------------------------------------------------------------------------------------------
# The executable is Deno's runtime plus the embedded program. It links only glibc and libgcc_s
# (libc, libm, libdl, librt, libpthread, libgcc_s), which is what distroless/cc ships, along with
# CA certificates, tzdata and /tmp; there is no shell and no package manager. Debian 13 because
# distroless's Debian 12 images reach end of life in September 2026.
FROM gcr.io/distroless/cc-debian13:nonroot

WORKDIR /app
COPY --from=build /app/dist/chat-server /app/chat-server

# Deno's own variable, not the server's: size the V8 heap from the container's memory limit
# instead of the host's memory (the official Deno images set it too).
ENV DENO_USE_CGROUPS=1
# The server's defaults, stated so `docker inspect` shows them; override at run time.
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080

# 65532 is distroless's "nonroot" user, given by number so Kubernetes' runAsNonRoot can check it.
USER 65532:65532

# No HEALTHCHECK: this image has no shell or HTTP client to run one. Probe from outside instead:
# GET /healthz (the process is up) for liveness, GET /readyz (200 when the store answers, 503
# during a database outage or shutdown) for readiness. See docs/deployment.md.

# SIGTERM starts the graceful shutdown (sockets closed with 1001, queue drained within
# SHUTDOWN_TIMEOUT). The server installs its own SIGTERM/SIGINT handlers and starts no child
# processes, so it can run as PID 1 without an init.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/chat-server"]

# tcptrace node agent image: a static binary (CGO_ENABLED=0, so that it can
# drop capabilities on every thread) in a minimal image that needs no
# writable filesystem. The BPF object is committed, so no clang is needed.
#
#   docker build -t tcptrace .                         # build from source (default target)
#   CGO_ENABLED=0 go build -o tcptrace ./cmd/tcptrace  # or take a prebuilt binary:
#   docker build --target prebuilt -t tcptrace .       #   FROM scratch, no registry needed
#
# The prebuilt stage comes first so that builders without BuildKit (which
# run every stage up to --target) never pull the Go image for it.
ARG GO_IMAGE=golang:1.26.8-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:latest

FROM scratch AS prebuilt
# Path of the binary in the build context.
ARG BINARY=tcptrace
COPY ${BINARY} /usr/local/bin/tcptrace
USER 0:0
ENTRYPOINT ["/usr/local/bin/tcptrace"]
CMD ["serve"]

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/tcptrace ./cmd/tcptrace

FROM ${RUNTIME_IMAGE} AS runtime
COPY --from=build /out/tcptrace /usr/local/bin/tcptrace
# Root, for the capabilities the agent needs at start; it drops all but a
# few once its program is attached (see docs/deploy.md).
USER 0:0
ENTRYPOINT ["/usr/local/bin/tcptrace"]
CMD ["serve"]

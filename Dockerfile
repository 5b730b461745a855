# tcptrace: multi-stage build of a static binary into a minimal image.
# The BPF object is committed (internal/probe/tcptrace_bpfel.o), so the
# builder needs no clang.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/tcptrace ./cmd/tcptrace

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/tcptrace /usr/local/bin/tcptrace
ENTRYPOINT ["/usr/local/bin/tcptrace"]

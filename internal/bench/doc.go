// Package bench holds tcptrace's end-to-end benchmarks, all in its test
// files: BenchmarkChurn (loopback connect/close churn, untraced against
// traced by the tcptrace binary, the probe's bare reader, the cheapest
// possible tracer and bpftrace), BenchmarkBulk (what tracing costs ordinary
// traffic), BenchmarkPileStartup and BenchmarkPileBuild (a TIME_WAIT pile
// that predates tracing) and BenchmarkTimerPrograms (the timewait
// programs' runs). They need root; bench/run runs them and prints the
// tables.
package bench

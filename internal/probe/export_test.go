package probe

// TwTimerHandler exposes twTimerHandler to the benchmarks' floor-tw
// reference (package probe_test).
var TwTimerHandler = twTimerHandler

# bench/tables.awk: the tables of bench/run from its raw `go test` output
# (awk -f bench/tables.awk RAW). Benchmark lines: name N value unit ...
function metric(u,   i) { for (i = 3; i < NF; i += 2) if ($(i+1) == u) return $i; return "" }
function fmt(v, d) { return v == "" ? "–" : sprintf("%." d "f", v) }
function mark(ok) { return ok ? "met" : "**not met**" }
# verdict: "value× met|not met" for value ≤ limit, counted per target.
function verdict(t, v, limit, label) {
	if (v == "") return "–"
	tot[t]++
	if (v <= limit) met[t]++
	return sprintf("%s× %s", fmt(v, 2), mark(v <= limit)) label
}
function get(k, u) { return (k SUBSEP u) in m ? m[k, u] : "" }
# noisy: what a benchmark saw of other work before its rounds.
function noisy(   b, f) {
	b = metric("busy-rounds"); f = metric("foreign-tracers")
	if (b == "" && f == "") return "–"
	if (b + 0 == 0 && f + 0 == 0) return "quiet"
	return sprintf("**busy %d rounds, %d foreign tracing programs**", b, f)
}
/^# workers / { workers = $3 }
/^Benchmark(Decode|TrackerObserve)/ {
	dec[++nd] = sprintf("| %s | %s | %s | %s |", $1, fmt(metric("events/s") / 1e6, 2), fmt(metric("ns/op"), 1), metric("allocs/op"))
}
/^BenchmarkChurn\// && NF > 3 {
	name = $1; sub(/^BenchmarkChurn\//, "", name); sub(/-[0-9]+$/, "", name)
	split(name, p, "/") # pile, mode, tracer
	k = workers SUBSEP p[1] SUBSEP p[2] SUBSEP p[3]
	if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
	for (i = 3; i < NF; i += 2) m[k, $(i+1)] = $i
	m[k, "noise"] = noisy()
	if (p[3] == "binary") {
		g = workers SUBSEP p[1] SUBSEP p[2]
		if (!(g in gseen)) { gseen[g] = 1; groups[++ng] = g }
	}
}
/^BenchmarkBulk\// && NF > 3 {
	name = $1; sub(/^BenchmarkBulk\//, "", name); sub(/-[0-9]+$/, "", name)
	pooled = metric("pooled-traced/untraced")
	target = name == "binary" ? "**" fmt(pooled, 3) "** (≥ 0.98) " mark(pooled >= 0.98) : fmt(pooled, 3) " (calibration)"
	bulk[++nb] = sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", name,
		fmt(metric("untraced-MB/s"), 0), fmt(metric("traced-MB/s"), 0), fmt(metric("traced/untraced"), 3),
		target, fmt(metric("tracer-%CPU"), 2), fmt(metric("timer-runs/s"), 0), fmt(metric("timer-ns/run"), 0),
		fmt(metric("timer-%CPU"), 2), noisy())
}
/^BenchmarkPileStartup\// && NF > 3 {
	name = $1; sub(/^BenchmarkPileStartup\//, "", name); sub(/-[0-9]+$/, "", name)
	rss = metric("live-peak-RSS-MiB"); shown = metric("live-shown-s"); lr = metric("live/ss")
	rr = metric("report/ss"); rs = metric("report-s")
	within = shown <= 2 && lr >= 0.99 && lr <= 1.01
	st[++ns] = sprintf("| %s | %s | %s | %s s | %s | %s MiB %s | %s s | %s | %s MiB | %s |", name,
		fmt(metric("pile-build-s"), 1), fmt(metric("ss-count"), 0), fmt(shown, 2), fmt(lr, 4),
		fmt(rss, 1), mark(rss <= 64), fmt(rs, 2), fmt(rr, 4), fmt(metric("report-peak-RSS-MiB"), 1),
		mark(within && rs <= 2 && rr >= 0.99 && rr <= 1.01))
}
/^# took / { took = $3 }
/^# [0-9]/ { head = $0; sub(/^# /, "", head) }
END {
	print "Run: " head (took != "" ? "; took " took " s" : "")
	print ""
	if (nd) {
		print "| userspace benchmark (1 core) | M events/s | ns/event | allocs/op |"
		print "|---|---|---|---|"
		for (i = 1; i <= nd; i++) print dec[i]
		print ""
	}
	if (nk) {
		print "| loops | pile | closes | tracer | untraced conns/s | traced conns/s | traced/untraced (median) | pooled | cost 1−pooled | ring drops | recursion misses | CPU-s / M events | start-up / exit CPU ms (max) | kernel ns/event (timer part) | peak RSS MiB | delivered/expected | before the rounds |"
		print "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
		for (i = 1; i <= nk; i++) {
			k = keys[i]; split(k, p, SUBSEP)
			pooled = get(k, "pooled-traced/untraced")
			kn = fmt(get(k, "kernel-ns/event"), 0)
			if (get(k, "timer-ns/event") != "") kn = kn " (" fmt(get(k, "timer-ns/event"), 0) ")"
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				p[1], p[2], p[3], p[4], fmt(get(k, "untraced-conns/s"), 0), fmt(get(k, "traced-conns/s"), 0),
				fmt(get(k, "traced/untraced"), 3), fmt(pooled, 3), pooled == "" ? "–" : fmt(1 - pooled, 3),
				fmt(get(k, "ring-drops"), 0), fmt(get(k, "recursion-misses"), 0), fmt(get(k, "cpu-s/Mevents"), 3),
				fmt(get(k, "max-startup-CPU-ms"), 0) " / " fmt(get(k, "max-exit-CPU-ms"), 0), kn, fmt(get(k, "peak-RSS-MiB"), 1), fmt(get(k, "delivered/expected"), 4), get(k, "noise")
		}
		print ""
		print "Same-run ratios of the binary (`tcptrace --json --port N`), each against references of the same invocation, loop count, close order and pile; costs are 1 − traced/untraced pooled over the rounds."
		print ""
		print "| loops | pile | closes | cost ÷ floor's (≤ 1.5×) | cost ÷ bpftrace's (≤ 0.125×) | CPU/event ÷ bpftrace's (≤ 0.10×) | kernel ns/event ÷ floor's (≤ 1.4×) | floor-tw ÷ floor: kernel ns, cost | CPU/M events ÷ pile-0's (≤ 1.2×) | lost (0) |"
		print "|---|---|---|---|---|---|---|---|---|---|"
		for (i = 1; i <= ng; i++) {
			g = groups[i]; split(g, p, SUBSEP)
			kb = g SUBSEP "binary"; kf = g SUBSEP "floor"; kt = g SUBSEP "bpftrace"
			cb = get(kb, "pooled-traced/untraced"); cb = cb == "" ? "" : 1 - cb
			cf = get(kf, "pooled-traced/untraced"); cf = cf == "" ? "" : 1 - cf
			ct = get(kt, "pooled-traced/untraced"); ct = ct == "" ? "" : 1 - ct
			vf = "–"
			if (cb != "" && cf != "") {
				tot["floor"]++
				if (cf > 0) {
					ok = cb <= 1.5 * cf
					vf = sprintf("%s× (%s ÷ %s) %s", fmt(cb / cf, 2), fmt(cb, 3), fmt(cf, 3), mark(ok))
				} else {
					ok = cb <= 0
					vf = sprintf("floor's cost %s ≤ 0; %s %s", fmt(cf, 3), fmt(cb, 3), mark(ok))
				}
				if (ok) met["floor"]++
			}
			vt = (cb != "" && ct != "" && ct > 0) ? verdict("bpftrace", cb / ct, 0.125, sprintf(" (%s ÷ %s)", fmt(cb, 3), fmt(ct, 3))) : "–"
			ub = get(kb, "cpu-s/Mevents"); ut = get(kt, "cpu-s/Mevents")
			vu = (ub != "" && ut != "" && ut > 0) ? verdict("cpu", ub / ut, 0.10, "") : "–"
			kbn = get(kb, "kernel-ns/event"); kfn = get(kf, "kernel-ns/event")
			vk = (kbn != "" && kfn != "" && kfn > 0) ? verdict("kernel", kbn / kfn, 1.4, sprintf(" (%s ÷ %s)", fmt(kbn, 0), fmt(kfn, 0))) : "–"
			# floor-tw: the floor plus timer programs that only keep timewait
			# timers: what any tracer on the timer tracepoints pays at least.
			kw = g SUBSEP "floor-tw"; kwn = get(kw, "kernel-ns/event"); cw = get(kw, "pooled-traced/untraced")
			cw = cw == "" ? "" : 1 - cw
			vw = (kwn != "" && kfn != "" && kfn > 0) ? sprintf("%s× (%s ÷ %s)", fmt(kwn / kfn, 2), fmt(kwn, 0), fmt(kfn, 0)) : "–"
			vw = vw ", " ((cw != "" && cf != "" && cf > 0) ? sprintf("%s×", fmt(cw / cf, 2)) : sprintf("%s vs %s", fmt(cw, 3), fmt(cf, 3)))
			u0 = get(p[1] SUBSEP "pile-0" SUBSEP p[3] SUBSEP "binary", "cpu-s/Mevents")
			vp = (p[2] != "pile-0" && ub != "" && u0 != "" && u0 > 0) ? verdict("pile", ub / u0, 1.2, sprintf(" (%s ÷ %s)", fmt(ub, 3), fmt(u0, 3))) : "–"
			lost = get(kb, "ring-drops") + get(kb, "recursion-misses")
			tot["lost"]++; if (lost == 0) met["lost"]++
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s %s |\n", p[1], p[2], p[3], vf, vt, vu, vk, vw, vp, lost, mark(lost == 0)
		}
		print ""
		printf "Met in: cost ÷ floor's %d of %d rows; cost ÷ bpftrace's %d of %d; CPU/event ÷ bpftrace's %d of %d; kernel ns ÷ floor's %d of %d; CPU with pile ÷ without %d of %d; 0 lost %d of %d.\n",
			met["floor"], tot["floor"], met["bpftrace"], tot["bpftrace"], met["cpu"], tot["cpu"],
			met["kernel"], tot["kernel"], met["pile"], tot["pile"], met["lost"], tot["lost"]
		print ""
	}
	ab = 0
	for (i = 1; i <= ng; i++) if (get(groups[i] SUBSEP "binary", "old-cpu-s/Mevents") != "") ab = 1
	if (ab) {
		print "A/B of two builds in the same rounds (`OLD=rev bench/run`): binary (this tree) against the old build, run one after the other in each round (the order turning), each in a fresh namespace."
		print ""
		print "| loops | pile | closes | CPU-s / M events new ÷ old | kernel ns/event new ÷ old | pooled traced/untraced new vs old |"
		print "|---|---|---|---|---|---|"
		for (i = 1; i <= ng; i++) {
			g = groups[i]; split(g, p, SUBSEP)
			kb = g SUBSEP "binary"
			ub = get(kb, "cpu-s/Mevents"); uo = get(kb, "old-cpu-s/Mevents")
			if (uo == "") continue
			nb_ = get(kb, "kernel-ns/event"); no = get(kb, "old-kernel-ns/event")
			printf "| %s | %s | %s | %s (%s ÷ %s) | %s | %s vs %s |\n", p[1], p[2], p[3],
				(ub != "" && uo > 0) ? fmt(ub / uo, 2) "×" : "–", fmt(ub, 3), fmt(uo, 3),
				(nb_ != "" && no != "" && no > 0) ? sprintf("%s× (%s ÷ %s)", fmt(nb_ / no, 2), fmt(nb_, 0), fmt(no, 0)) : "–",
				fmt(get(kb, "pooled-traced/untraced"), 3), fmt(get(kb, "old-pooled-traced/untraced"), 3)
		}
		print ""
	}
	if (nb) {
		print "| bulk transfer, 4 connections, traced by | untraced MB/s | traced MB/s | traced/untraced (median) | pooled | tracer % of a CPU | timer-program runs/s | ns/run (statistics on) | timer programs % of a CPU | before the rounds |"
		print "|---|---|---|---|---|---|---|---|---|---|"
		for (i = 1; i <= nb; i++) print bulk[i]
		print ""
	}
	if (ns) {
		print "| start-up beside a pile | pile build s | ss count | live: start-up line after | its count ÷ ss's | live peak RSS (≤ 64 MiB) | report --duration 1s took | its count ÷ ss's | report peak RSS | ss's count within 1 % within 2 s |"
		print "|---|---|---|---|---|---|---|---|---|---|"
		for (i = 1; i <= ns; i++) print st[i]
		print ""
	}
}

//! Printing a run: a human-readable block, and with `--label` one `ROW |…|` markdown row whose
//! columns are those of the table header in `bench/run.sh`.

use hdrhistogram::Histogram;

use crate::load::RunResult;
use crate::{Arrival, Operation, Options};

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        return 0.0;
    }
    let us = if q >= 1.0 { h.max() } else { h.value_at_quantile(q) };
    us as f64 / 1000.0
}

pub fn print(operation: Operation, arrival: Arrival, o: &Options, r: &RunResult) {
    let s = &r.stats;
    let secs = r.elapsed.as_secs_f64().max(1e-9);
    let op = match operation {
        Operation::Submit => "submit",
        Operation::SubmitToCompleted => "submit-to-completed",
    };
    let (how, origin) = match arrival {
        Arrival::OpenLoop { rate_per_s } => (format!("open loop at {rate_per_s}/s"), "from the scheduled send time"),
        Arrival::ClosedLoop { concurrency } => (format!("closed loop, {concurrency} workers"), "from the send"),
    };
    println!("operation    {op} {} ({how}, {} s{})", o.model, o.duration, if o.idempotency { ", Idempotency-Key" } else { "" });
    println!("sent         {}", s.sent);
    println!("ok           {}", s.ok);
    let mut errors: Vec<String> = s.statuses.iter().map(|(code, n)| format!("{code}: {n}")).collect();
    errors.extend(s.errors.iter().map(|(kind, n)| format!("{kind}: {n}")));
    if r.abandoned > 0 {
        errors.push(format!("abandoned: {}", r.abandoned));
    }
    println!("errors       {} ({})", s.failed(), if errors.is_empty() { "none".to_owned() } else { errors.join(", ") });
    println!("elapsed      {secs:.2} s");
    println!("throughput   {:.1} ok/s", s.ok as f64 / secs);
    for (name, h, origin) in [("latency", &s.latency, origin), ("service", &s.service, "from the actual send")] {
        println!(
            "{name:<12} p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms  ({origin})",
            ms(h, 0.5),
            ms(h, 0.9),
            ms(h, 0.99),
            ms(h, 0.999),
            ms(h, 1.0)
        );
    }
    if let Some(label) = &o.label {
        println!(
            "ROW | {label} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            s.sent,
            s.ok,
            if errors.is_empty() { "0".to_owned() } else { errors.join(", ") },
            s.ok as f64 / secs,
            ms(&s.latency, 0.5),
            ms(&s.latency, 0.9),
            ms(&s.latency, 0.99),
            ms(&s.latency, 1.0),
            ms(&s.service, 0.99),
        );
    }
}

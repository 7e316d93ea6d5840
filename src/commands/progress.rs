//! Apply progress: a bar per replica on a terminal, one log line per object elsewhere.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use k8s_sync::apply::{Done, Progress};
use k8s_sync::diff::Change;
use k8s_sync::report::Report;

use super::Output;
use k8s_sync::diff::render::Detail;

/// Shows apply progress on stderr.
pub struct Reporter {
    bars: Option<(MultiProgress, HashMap<String, ProgressBar>)>,
    detail: Detail,
}

impl Reporter {
    /// Bars for `replicas` when stderr is a terminal (and not `--quiet`), else log lines.
    pub fn new(output: &Output, replicas: &[String]) -> Self {
        let bars = (std::io::stderr().is_terminal() && output.detail > Detail::Quiet).then(|| {
            let multi = MultiProgress::new();
            let style = ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {msg}")
                .expect("the template is valid")
                .progress_chars("=> ");
            let bars = replicas
                .iter()
                .map(|name| {
                    let bar = multi.add(ProgressBar::new(0).with_style(style.clone()));
                    bar.set_prefix(name.clone());
                    (name.clone(), bar)
                })
                .collect();
            (multi, bars)
        });
        Reporter {
            bars,
            detail: output.detail,
        }
    }

    fn bar(&self, replica: &str) -> Option<&ProgressBar> {
        self.bars.as_ref().and_then(|(_, bars)| bars.get(replica))
    }

    fn line(&self, text: String) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(text);
            }
            None if self.detail > Detail::Quiet => eprintln!("{text}"),
            None => {}
        }
    }
}

impl Progress for Reporter {
    fn started(&self, replica: &str, total: usize) {
        if let Some(bar) = self.bar(replica) {
            bar.set_length(total as u64);
        }
    }

    fn finished(
        &self,
        replica: &str,
        change: &Change,
        result: &Result<Done, String>,
        elapsed: Duration,
    ) {
        let what = match (result, change.action) {
            (Err(_), _) => "failed",
            (Ok(Done::Recreated), _) => "recreated",
            (Ok(Done::Deleted), _) => "pruned",
            (Ok(Done::Unvalidated), _) => {
                "would create (not validated: its namespace does not exist yet)"
            }
            (Ok(Done::Applied), k8s_sync::diff::Action::Create) => "created",
            (Ok(Done::Applied), _) => "updated",
            (Ok(Done::Released), _) => "released",
        };
        let reference = change.reference();
        match (self.bar(replica), result) {
            (Some(bar), Ok(_)) => {
                bar.inc(1);
                bar.set_message(format!("{what} {reference}"));
            }
            (Some(bar), Err(error)) => {
                bar.inc(1);
                self.line(format!("{replica}: failed {reference}: {error}"));
            }
            (None, Ok(_)) => self.line(format!(
                "{replica}: {what} {reference} ({} ms)",
                elapsed.as_millis()
            )),
            (None, Err(error)) => self.line(format!("{replica}: failed {reference}: {error}")),
        }
    }

    fn completed(&self, report: &Report) {
        if let Some(bar) = self.bar(&report.replica) {
            bar.finish_and_clear();
        }
        if let Some(error) = &report.error {
            self.line(format!("{}: {error}", report.replica));
        }
        for warning in &report.warnings {
            self.line(format!("{}: warning: {warning}", report.replica));
        }
    }
}

/// The closing line for one replica.
pub fn summary(report: &Report) -> String {
    let mut line = format!(
        "{}: {} created, {} updated, {} recreated, {} pruned, {} unchanged, {} conflicts, {} failed in {:.1}s ({} writes)",
        report.replica,
        report.created,
        report.updated,
        report.recreated,
        report.pruned,
        report.unchanged,
        report.conflicts,
        report.failed,
        report.duration_ms as f64 / 1000.0,
        report.writes,
    );
    for (count, what) in [
        (report.held, "prunes held over --max-prune"),
        (report.delayed, "prunes delayed"),
        (report.kept, "kept (PVCs, CRDs)"),
        (report.released, "released to their owners"),
        (
            report.unvalidated,
            "not validated (their namespaces do not exist yet)",
        ),
    ] {
        if count > 0 {
            line.push_str(&format!(", {count} {what}"));
        }
    }
    line
}

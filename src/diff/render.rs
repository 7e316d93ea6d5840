//! Showing a [`Plan`] to people (text with unified diffs) and programs (JSON).

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

use super::{Action, Change, Deferral, Plan, Reason, Summary, project};
use crate::normalize;
use crate::secret;
use crate::snapshot::{Entry, Snapshot};

/// How much text to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Detail {
    /// Summary lines only.
    Quiet,
    /// Summaries, drifted objects and their diffs.
    #[default]
    Normal,
    /// Also in-sync objects.
    Verbose,
}

/// Text rendering options.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOptions {
    /// ANSI colors.
    pub color: bool,
    /// How much to show.
    pub detail: Detail,
}

const ADDED: Style = AnsiColor::Green.on_default();
const REMOVED: Style = AnsiColor::Red.on_default();
const HUNK: Style = AnsiColor::Cyan.on_default();
const BOLD: Style = Style::new().bold();

fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("{style}{text}{style:#}")
    } else {
        text.to_string()
    }
}

/// One line summing a plan up.
pub fn summary_line(replica: &str, s: &Summary) -> String {
    let mut line = format!(
        "{replica}: {} in sync, {} to create, {} to update, {} to prune, {} conflicts",
        s.in_sync, s.create, s.update, s.prune, s.conflict
    );
    for (count, what) in [
        (s.needs_recreate, "need recreate"),
        (s.held, "prunes held over --max-prune"),
        (s.delayed, "prunes delayed"),
        (
            s.kept,
            "kept (PVCs gone from the primary; --prune-pvcs prunes them)",
        ),
        (s.waiting, "waiting for the primary"),
    ] {
        if count > 0 {
            let _ = write!(line, ", {count} {what}");
        }
    }
    line
}

/// Renders a plan as text: the summary, then each drifted object with a unified diff of its
/// normalized YAML (replica's copy, cut to the source's fields, against the source's).
pub fn text(plan: &Plan, desired: &Snapshot, live: &Snapshot, options: TextOptions) -> String {
    let color = options.color;
    let mut out = paint(color, BOLD, &summary_line(&plan.replica, &plan.summary));
    out.push('\n');
    if options.detail == Detail::Quiet {
        return out;
    }
    for (kind, reason) in &plan.waiting {
        let _ = writeln!(out, "  {kind}: nothing is done while {reason}");
    }
    if !plan.missing_namespaces.is_empty() {
        let _ = writeln!(
            out,
            "  namespaces to create: {}",
            plan.missing_namespaces.join(", ")
        );
    }
    for change in &plan.changes {
        if change.action == Action::InSync && options.detail < Detail::Verbose {
            continue;
        }
        let reference = change.reference();
        let (mark, style) = match change.action {
            Action::InSync => ("=", Style::new()),
            Action::Create => ("+", ADDED),
            Action::Update => ("~", AnsiColor::Yellow.on_default()),
            Action::NeedsRecreate => ("!", AnsiColor::Magenta.on_default()),
            Action::Prune => ("-", REMOVED),
            Action::Conflict => ("?", AnsiColor::Magenta.on_default()),
            Action::Keep => ("=", Style::new()),
            Action::Release => ("~", AnsiColor::Cyan.on_default()),
        };
        let label = format!("{mark} {:<14} {reference}", action_label(change.action));
        let _ = write!(out, "{}", paint(color, style, &label));
        if let Some(reason) = change.reason {
            let _ = write!(out, " ({})", reason_label(reason));
        }
        match change.deferral {
            Some(Deferral::Held) => out.push_str(
                " (held over --max-prune: `k8s-sync jobs release` or `apply --force-prune` prunes it)",
            ),
            Some(Deferral::Delayed { due }) => {
                let _ = write!(out, " (delayed by --prune-delay until {due})");
            }
            None => {}
        }
        out.push('\n');
        if change.action == Action::Release {
            out.push_str("    owned by a synced kind's controller: k8s-sync's markers come off, the object stays\n");
        }
        if matches!(
            change.action,
            Action::InSync | Action::Keep | Action::Release
        ) {
            continue;
        }
        if !change.immutable_paths.is_empty() {
            let _ = writeln!(
                out,
                "    immutable fields changed: {} (apply --recreate deletes and re-creates it{})",
                change.immutable_paths.join(", "),
                if change.kind.recreatable {
                    ""
                } else {
                    "; never done for this kind"
                }
            );
        }
        if let Some(keys) = &change.secret_keys {
            let list = |set: &std::collections::BTreeSet<String>| {
                set.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            for (what, set) in [
                ("added", &keys.added),
                ("removed", &keys.removed),
                ("changed", &keys.changed),
            ] {
                if !set.is_empty() {
                    let _ = writeln!(out, "    secret keys {what}: {}", list(set));
                }
            }
        }
        let want = desired.objects.get(&reference);
        let have = live.objects.get(&reference);
        out.push_str(&unified(
            change,
            want,
            have,
            &desired.source,
            &plan.replica,
            color,
        ));
    }
    out
}

fn action_label(action: Action) -> &'static str {
    match action {
        Action::InSync => "in sync",
        Action::Create => "create",
        Action::Update => "update",
        Action::NeedsRecreate => "needs recreate",
        Action::Prune => "prune",
        Action::Conflict => "conflict",
        Action::Keep => "kept",
        Action::Release => "release",
    }
}

fn reason_label(reason: Reason) -> &'static str {
    match reason {
        Reason::SourceChanged => "changed on the source",
        Reason::EditedOnReplica => "edited on the replica",
        Reason::Adopt => "not created by k8s-sync; will be adopted",
        Reason::Unmanaged => "not created by k8s-sync; --no-adopt",
        Reason::OtherSource => "written by k8s-sync from another source; left alone",
    }
}

/// The unified diff of one change, indented, Secret values masked.
fn unified(
    change: &Change,
    want: Option<&Entry>,
    have: Option<&Entry>,
    source: &str,
    replica: &str,
    color: bool,
) -> String {
    let mut desired: Option<Value> = want.map(Entry::object);
    let mut live: Option<Value> = match (have, &desired) {
        (Some(have), Some(desired)) => Some(project(&have.object(), desired)),
        (Some(have), None) => Some(have.object()),
        (None, _) => None,
    };
    if change.kind.is("", "Secret") {
        secret::mask_pair(desired.as_mut(), live.as_mut());
    }
    let yaml = |v: &Option<Value>| v.as_ref().map(normalize::to_yaml).unwrap_or_default();
    let (old, new) = (yaml(&live), yaml(&desired));
    let reference = change.reference();
    let diff = TextDiff::from_lines(&old, &new);
    let mut out = String::new();
    let unified = diff
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{replica}/{reference}"),
            &format!("{source}/{reference}"),
        )
        .to_string();
    for line in unified.lines() {
        let style = match line.as_bytes().first() {
            _ if line.starts_with("---") || line.starts_with("+++") => BOLD,
            Some(b'+') => ADDED,
            Some(b'-') => REMOVED,
            Some(b'@') => HUNK,
            _ => Style::new(),
        };
        let _ = writeln!(out, "    {}", paint(color, style, line));
    }
    out
}

/// A plan as `-o json` shows it: drifted objects only, and no change keys of Secrets (a hash
/// of a weak value can be reversed by guessing).
#[derive(Debug, Serialize)]
pub struct PlanView<'a> {
    /// The replica's name.
    pub replica: &'a str,
    /// Counts per action.
    pub summary: &'a Summary,
    /// Namespaces the replica lacks.
    pub missing_namespaces: &'a [String],
    /// Drifted objects, and kept ones.
    pub changes: Vec<Change>,
    /// Kinds nothing was done to, and why.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub waiting: &'a [(String, String)],
    /// Cluster-scoped objects that synced ones refer to and the replica lacks.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub warnings: &'a [String],
}

impl<'a> From<&'a Plan> for PlanView<'a> {
    fn from(plan: &'a Plan) -> Self {
        PlanView {
            replica: &plan.replica,
            summary: &plan.summary,
            missing_namespaces: &plan.missing_namespaces,
            waiting: &plan.waiting,
            warnings: &plan.warnings,
            changes: plan
                .changes
                .iter()
                .filter(|c| c.action != Action::InSync)
                .map(|change| {
                    let mut change = change.clone();
                    if change.kind.is("", "Secret") {
                        change.desired_key = None;
                        change.live_key = None;
                        change.applied_key = None;
                    }
                    change
                })
                .collect(),
        }
    }
}

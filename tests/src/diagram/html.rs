//! The diagram as one self-contained HTML page: inline SVG, a little CSS,
//! and a few lines of script to hide message kinds. Time runs down the
//! page; elements carry stable classes (`lane`, `msg`, `drop`, `lost`,
//! `crash`, `fault`, `commit`, `violation`) and data attributes.

use super::{Arrow, Diagram, FaultMark, Role};
use crate::faults::Fault;
use crate::sim::{Outcome, TICK};
use std::collections::BTreeSet;
use std::fmt::Write;

/// Left margin, for the time axis (px).
const LEFT: f64 = 70.0;
/// Width of one lane (px).
const LANE_W: f64 = 170.0;
/// Height of the lane headers (px).
const TOP: f64 = 46.0;
/// Arrows at most with a visible label (beyond, hover titles only).
const MAX_LABELS: usize = 800;

/// Each kind's colour, in `Body::name` order.
const KINDS: [(&str, &str); 15] = [
    ("PrePrepare", "#8e44ad"),
    ("PrePrepareReply", "#b07cc6"),
    ("Prepare", "#1f4e99"),
    ("Promise", "#4a90d9"),
    ("Accept", "#1e8449"),
    ("Accepted", "#58b368"),
    ("Reject", "#c0392b"),
    ("Heartbeat", "#a0a0a0"),
    ("HeartbeatReply", "#c8c8c8"),
    ("Propose", "#d68910"),
    ("Decide", "#117a65"),
    ("TimeoutNow", "#e67e22"),
    ("InstallSnapshot", "#6e2c00"),
    ("SnapshotReply", "#a04000"),
    ("Empty", "#000000"),
];

/// The page for a run recorded with `SimOptions::record`; `None` when the
/// run was not recorded.
pub fn render(out: &Outcome) -> Option<String> {
    let d = out.diagram.as_deref()?;
    let heading = format!(
        "seed {} — {} voters, {} learners, quorums {}",
        out.seed,
        out.nodes,
        out.learners,
        crate::quorums::show(out.quorums)
    );
    Some(render_page(
        d,
        &format!("sim seed {} space-time diagram", out.seed),
        &heading,
        &out.summary_line(),
    ))
}

/// The page for any recorded [`Diagram`] (a simulated run, or an explored
/// trace): `title` for the browser, `heading` and `summary` above the
/// drawing.
pub fn render_page(d: &Diagram, title: &str, heading: &str, summary: &str) -> String {
    let page = Page::new(d);
    let mut svg = String::new();
    page.svg(&mut svg);
    let mut html = String::with_capacity(svg.len() + 8192);
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    let _ = writeln!(html, "<title>{}</title>", esc(title));
    html.push_str(STYLE);
    page.css_kinds(&mut html);
    html.push_str("</head><body>\n");
    page.header(heading, summary, &mut html);
    html.push_str(&svg);
    // Filled in by the script with what the browser drew, for tests.
    html.push_str("<div id=\"counts\" hidden></div>\n");
    html.push_str(SCRIPT);
    html.push_str("</body></html>\n");
    html
}

const STYLE: &str = "<style>
body{font:13px system-ui,sans-serif;margin:8px;color:#222}
h1{font-size:16px;margin:0 0 4px}
.info{margin:2px 0}
.violation-text{background:#fde2e1;border:2px solid #c0392b;color:#8b0000;padding:6px;margin:4px 0;font-weight:bold}
.legend label{margin-right:10px;white-space:nowrap}
.legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:3px}
svg{display:block}
svg text{font:11px system-ui,sans-serif}
.lane line{stroke:#333;stroke-width:1.5}
.lane text{font-weight:bold;font-size:12px}
.axis text{fill:#666;font-size:10px}
.axis line{stroke:#eee}
.msg,.lost{fill:none;stroke-width:1.2}
.msg[data-dup=\"1\"]{stroke-dasharray:4 2}
.drop line{stroke-width:1.2;stroke-dasharray:2 2}
.drop path,.lost-x{stroke:#c0392b;stroke-width:2;fill:none}
.lost{stroke-dasharray:1 2}
.lbl{font-size:9px!important;fill:#333}
.lbl,.commit,.fault text,.violation text,.liveness text{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.crash{fill:#bbb;fill-opacity:.55;stroke:#777;stroke-dasharray:3 2}
.fault rect{fill:#f5b041;fill-opacity:.16;stroke:#d68910;stroke-opacity:.6}
.fault text{fill:#a04000}
.fault line{stroke:#d68910;stroke-dasharray:6 3}
.commit{fill:#117a65;font-size:11px!important;font-weight:bold}
.liveness line{stroke:#117a65;stroke-width:1.5;stroke-dasharray:8 4}
.liveness text{fill:#117a65}
.violation line{stroke:#c0392b;stroke-width:3}
.violation circle{fill:#c0392b}
.violation text{fill:#c0392b;font-weight:bold;font-size:13px!important}
.hidden{display:none}
</style>\n";

const SCRIPT: &str = "<script>
var n=document.getElementById('counts');
['lane','msg','drop','lost','crash','fault','commit','violation'].forEach(function(k){
  n.setAttribute('data-'+k,document.querySelectorAll('svg .'+k).length);});
document.querySelectorAll('.legend input[data-kind]').forEach(function(c){
  c.addEventListener('change',function(){
    document.querySelectorAll('svg [data-kind=\"'+c.dataset.kind+'\"]').forEach(function(e){
      e.classList.toggle('hidden',!c.checked);});});});
var l=document.getElementById('labels');
if(l){l.addEventListener('change',function(){
  document.querySelectorAll('.lbl').forEach(function(e){e.classList.toggle('hidden',!l.checked);});});}
</script>\n";

/// Geometry of one page.
struct Page<'a> {
    d: &'a Diagram,
    /// Drawn from this time (a tick before anything happens).
    start: u64,
    /// Drawn up to this time.
    until: u64,
    /// Pixels per tick.
    ppt: f64,
}

impl<'a> Page<'a> {
    fn new(d: &'a Diagram) -> Page<'a> {
        let until = d.shown_until().max(TICK);
        let first = [
            d.arrows.first().map(|a| a.sent),
            d.drops.first().map(|m| m.sent),
            d.faults.first().map(|f| f.at),
            d.downs.first().map(|x| x.from),
            d.commits.first().map(|c| c.at),
            d.violation.as_ref().map(|v| v.0),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0);
        let start = (first / TICK).saturating_sub(1) * TICK;
        let start = start.min(until.saturating_sub(TICK));
        let ticks = (until - start) as f64 / TICK as f64;
        let ppt = (24_000.0 / ticks).clamp(4.0, 40.0);
        Page {
            d,
            start,
            until,
            ppt,
        }
    }

    fn y(&self, t: u64) -> f64 {
        let t = t.clamp(self.start, self.until) - self.start;
        TOP + 10.0 + t as f64 / TICK as f64 * self.ppt
    }

    fn x(&self, node: u64) -> Option<f64> {
        let i = self.d.lanes.iter().position(|l| l.id == node)?;
        Some(LEFT + LANE_W / 2.0 + i as f64 * LANE_W)
    }

    fn width(&self) -> f64 {
        LEFT + LANE_W * self.d.lanes.len().max(1) as f64 + 10.0
    }

    fn height(&self) -> f64 {
        self.y(self.until) + 30.0
    }

    fn css_kinds(&self, html: &mut String) {
        html.push_str("<style>\n");
        for (kind, colour) in KINDS {
            let _ = writeln!(
                html,
                "path[data-kind=\"{kind}\"],line[data-kind=\"{kind}\"]{{stroke:{colour}}} .legend i[data-kind=\"{kind}\"]{{background:{colour}}}"
            );
        }
        html.push_str("</style>\n");
    }

    fn header(&self, heading: &str, summary: &str, html: &mut String) {
        let d = self.d;
        let _ = writeln!(html, "<h1>{}</h1>", esc(heading));
        if let Some((at, text)) = &d.violation {
            let more = match d.violations {
                0 | 1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            let _ = writeln!(
                html,
                "<div class=\"violation-text\">First violation at t={}: {}{}</div>",
                time(*at),
                esc(text),
                more
            );
        }
        let _ = writeln!(
            html,
            "<div class=\"info\">{} &nbsp; {} delivered, {} lost at a down node, {} dropped, {} duplicated; run ended at t={}.</div>",
            esc(summary),
            d.delivered,
            d.lost,
            d.dropped,
            d.duplicated,
            time(d.end)
        );
        if d.full() {
            let _ = writeln!(
                html,
                "<div class=\"info\"><b>Only the first {} deliveries are drawn</b> (up to t={}); the run has {} in all.</div>",
                d.arrows.len(),
                time(self.until),
                d.delivered + d.lost
            );
        }
        if self.start > 0 {
            let _ = writeln!(
                html,
                "<div class=\"info\">No message, fault or commit before t={}: the drawing starts there.</div>",
                self.start / TICK
            );
        }
        html.push_str("<div class=\"info legend\">");
        for (kind, _) in KINDS {
            if d.arrows.iter().any(|a| a.kind == kind) {
                let _ = write!(
                    html,
                    "<label><input type=\"checkbox\" checked data-kind=\"{kind}\"><i data-kind=\"{kind}\"></i>{kind}</label>"
                );
            }
        }
        if self.labelled() {
            html.push_str("<label><input type=\"checkbox\" checked id=\"labels\">labels</label>");
        }
        html.push_str("</div>\n<div class=\"info\">Time runs down (ticks). Dashed arrow: a duplicate; arrow ending in a red x: dropped by the network, or (dotted) reaching a node that was down. Grey: a node down. Orange: faults. Green c=N: the node's committed slot. Labels: kind and ballot (none on heartbeats, nor where they would overlap). Hover for details.</div>\n");
    }

    fn labelled(&self) -> bool {
        self.d.arrows.len() <= MAX_LABELS
    }

    fn svg(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{:.0}\">",
            self.width(),
            self.height()
        );
        s.push_str("<defs><marker id=\"head\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"context-stroke\"/></marker></defs>\n");
        self.axis(s);
        self.faults(s);
        self.lanes(s);
        self.downs(s);
        self.liveness(s);
        let mut labels = BTreeSet::new();
        for a in &self.d.arrows {
            self.arrow(s, a, &mut labels);
        }
        self.drops(s);
        self.commits(s);
        self.violation(s);
        s.push_str("</svg>\n");
    }

    fn axis(&self, s: &mut String) {
        let step = [1u64, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
            .into_iter()
            .find(|&k| k as f64 * self.ppt >= 40.0)
            .unwrap_or(10_000);
        s.push_str("<g class=\"axis\">");
        let mut t = (self.start / TICK).div_ceil(step) * step;
        while t * TICK <= self.until {
            let y = self.y(t * TICK);
            let _ = write!(
                s,
                "<line x1=\"{LEFT}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text x=\"4\" y=\"{:.1}\">t={t}</text>",
                self.width(),
                y + 3.0
            );
            t += step;
        }
        s.push_str("</g>\n");
    }

    fn lanes(&self, s: &mut String) {
        for lane in &self.d.lanes {
            let Some(x) = self.x(lane.id) else { continue };
            let role = match lane.role {
                Role::Voter => "voter",
                Role::Learner => "learner",
                Role::Joined => "joined",
            };
            let (y1, y2) = (self.y(lane.from), self.y(lane.until.unwrap_or(self.until)));
            let _ = writeln!(
                s,
                "<g class=\"lane\" data-node=\"{id}\" data-role=\"{role}\"><text x=\"{x:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">node {id} ({role})</text><line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y1:.1}\" y2=\"{y2:.1}\"/></g>",
                id = lane.id,
                ty = (y1 - 14.0).max(14.0),
            );
        }
    }

    fn downs(&self, s: &mut String) {
        for down in &self.d.downs {
            if down.from > self.until {
                continue;
            }
            let Some(x) = self.x(down.node) else { continue };
            let lane_end = self
                .d
                .lanes
                .iter()
                .find(|l| l.id == down.node)
                .and_then(|l| l.until);
            let until = down.until.or(lane_end).unwrap_or(self.until);
            let (y1, y2) = (self.y(down.from), self.y(until));
            let back = down.until.map_or("never restarted".to_string(), |t| {
                format!("until t={}", time(t))
            });
            let _ = writeln!(
                s,
                "<rect class=\"crash\" data-node=\"{}\" x=\"{:.1}\" y=\"{y1:.1}\" width=\"16\" height=\"{:.1}\"><title>node {} down from t={}, {back}</title></rect>",
                down.node,
                x - 8.0,
                (y2 - y1).max(2.0),
                down.node,
                time(down.from),
            );
        }
    }

    /// The end of a fault's effect: a clog's own time, a cut's heal.
    fn fault_end(&self, i: usize, f: &FaultMark) -> Option<u64> {
        let heal = || {
            self.d.faults[i + 1..]
                .iter()
                .find(|g| g.fault == Fault::Heal)
                .map(|g| g.at)
                .or(self.d.liveness_at)
                .unwrap_or(self.until)
        };
        match f.fault {
            Fault::Clog { ticks, .. } => Some((f.at + ticks * TICK).min(heal())),
            Fault::Isolate(_)
            | Fault::Split(_)
            | Fault::OneWay { .. }
            | Fault::CutPair(..)
            | Fault::Stall(_) => Some(heal()),
            Fault::Crash { .. } | Fault::Heal | Fault::Transfer(_) | Fault::Campaign(_) => None,
        }
    }

    fn faults(&self, s: &mut String) {
        for (i, f) in self.d.faults.iter().enumerate() {
            if f.at > self.until {
                continue;
            }
            let text = esc(&f.fault.to_string());
            let y1 = self.y(f.at);
            let nodes: Vec<u64> = match f.fault {
                Fault::Isolate(a) | Fault::Stall(a) | Fault::Transfer(a) | Fault::Campaign(a) => {
                    vec![a]
                }
                Fault::Crash { node, .. } => vec![node],
                Fault::OneWay { from, to } | Fault::Clog { from, to, .. } => vec![from, to],
                Fault::CutPair(a, b) => vec![a, b],
                Fault::Split(_) | Fault::Heal => Vec::new(),
            };
            let xs: Vec<f64> = nodes.iter().filter_map(|&n| self.x(n)).collect();
            let (x1, x2) = match (
                xs.iter().copied().reduce(f64::min),
                xs.iter().copied().reduce(f64::max),
            ) {
                (Some(a), Some(b)) => (a - LANE_W * 0.4, b + LANE_W * 0.4),
                _ => (LEFT, self.width() - 10.0),
            };
            let _ = write!(
                s,
                "<g class=\"fault\" data-fault=\"{text}\"><title>fault {text} at t={}</title>",
                time(f.at)
            );
            match self.fault_end(i, f) {
                Some(end) => {
                    let y2 = self.y(end).max(y1 + 2.0);
                    let _ = write!(
                        s,
                        "<rect x=\"{x1:.1}\" y=\"{y1:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
                        x2 - x1,
                        y2 - y1
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        "<line x1=\"{x1:.1}\" x2=\"{x2:.1}\" y1=\"{y1:.1}\" y2=\"{y1:.1}\"/>"
                    );
                }
            }
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\">{text}</text></g>",
                x1 + 3.0,
                y1 - 2.0
            );
        }
    }

    fn liveness(&self, s: &mut String) {
        let Some(at) = self.d.liveness_at.filter(|&t| t <= self.until) else {
            return;
        };
        let y = self.y(at);
        let _ = writeln!(
            s,
            "<g class=\"liveness\"><line x1=\"{LEFT}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text x=\"{:.0}\" y=\"{:.1}\">liveness phase: faults stop, links heal</text></g>",
            self.width() - 10.0,
            LEFT + 4.0,
            y - 3.0
        );
    }

    /// One arrow; its label only where no other label sits (`labels`:
    /// the cells of the page taken so far).
    fn arrow(&self, s: &mut String, a: &Arrow, labels: &mut BTreeSet<(i64, i64)>) {
        let (Some(x1), Some(x2)) = (self.x(a.from), self.x(a.to)) else {
            return;
        };
        let (y1, y2) = (self.y(a.sent), self.y(a.at));
        let path = if a.from == a.to {
            format!(
                "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x1:.1},{y2:.1}",
                x1 + 30.0,
                x1 + 30.0
            )
        } else {
            format!("M{x1:.1},{y1:.1} L{x2:.1},{y2:.1}")
        };
        let ballot = a.ballot.map_or(String::new(), |b| format!(" b={b}"));
        let title = format!(
            "{}{}{} — sent t={}, arrived t={}",
            esc(&a.text),
            if a.duplicate { " (duplicate)" } else { "" },
            if a.received {
                ""
            } else {
                " — receiver down, lost"
            },
            time(a.sent),
            time(a.at)
        );
        let class = if a.received { "msg" } else { "lost" };
        let _ = write!(
            s,
            "<path class=\"{class}\" data-kind=\"{}\" data-from=\"{}\" data-to=\"{}\" data-dup=\"{}\" d=\"{path}\" marker-end=\"url(#head)\"><title>{title}</title></path>",
            a.kind,
            a.from,
            a.to,
            u8::from(a.duplicate),
        );
        if !a.received {
            cross(s, "lost-x", x2, y2);
        }
        let chatter = matches!(a.kind, "Heartbeat" | "HeartbeatReply");
        let (mx, my) = (x1 + (x2 - x1) * 0.3, y1 + (y2 - y1) * 0.3);
        let cell = ((mx / 60.0) as i64, (my / 11.0) as i64);
        if self.labelled() && a.from != a.to && !chatter && labels.insert(cell) {
            let _ = write!(
                s,
                "<text class=\"lbl\" data-kind=\"{}\" x=\"{mx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}{ballot}</text>",
                a.kind,
                my - 2.0,
                short(a.kind)
            );
        }
        s.push('\n');
    }

    fn drops(&self, s: &mut String) {
        for m in &self.d.drops {
            let Some(x1) = self.x(m.from) else { continue };
            let x2 = self.x(m.to).unwrap_or(x1 + 40.0);
            let y = self.y(m.sent);
            let xe = x1 + (x2 - x1) * 0.35;
            let _ = write!(
                s,
                "<g class=\"drop\" data-kind=\"{}\" data-from=\"{}\" data-to=\"{}\"><title>{} — dropped, sent t={}</title><line data-kind=\"{}\" x1=\"{x1:.1}\" y1=\"{y:.1}\" x2=\"{xe:.1}\" y2=\"{y:.1}\"/>",
                m.kind,
                m.from,
                m.to,
                esc(&m.text),
                time(m.sent),
                m.kind
            );
            cross(s, "", xe, y);
            s.push_str("</g>\n");
        }
    }

    fn commits(&self, s: &mut String) {
        for c in &self.d.commits {
            let Some(x) = self.x(c.node) else { continue };
            let _ = writeln!(
                s,
                "<text class=\"commit\" data-node=\"{}\" x=\"{:.1}\" y=\"{:.1}\">c={}<title>node {} committed up to slot {} at t={}</title></text>",
                c.node,
                x + 10.0,
                self.y(c.at) + 3.0,
                c.slot,
                c.node,
                c.slot,
                time(c.at)
            );
        }
    }

    fn violation(&self, s: &mut String) {
        let Some((at, text)) = &self.d.violation else {
            return;
        };
        let y = self.y(*at);
        let beyond = if *at > self.until {
            " (after the drawn part)"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<g class=\"violation\"><title>{}</title><line x1=\"{LEFT}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><circle cx=\"{:.0}\" cy=\"{y:.1}\" r=\"6\"/><text x=\"{:.0}\" y=\"{:.1}\">VIOLATION t={}{beyond}: {}</text></g>",
            esc(text),
            self.width() - 10.0,
            LEFT,
            LEFT + 10.0,
            y - 5.0,
            time(*at),
            esc(text)
        );
    }
}

/// A red x at (x, y).
fn cross(s: &mut String, class: &str, x: f64, y: f64) {
    let class = if class.is_empty() {
        String::new()
    } else {
        format!(" class=\"{class}\"")
    };
    let _ = write!(
        s,
        "<path{class} d=\"M{:.1},{:.1} l8,8 m0,-8 l-8,8\"/>",
        x - 4.0,
        y - 4.0
    );
}

/// A kind's short visible label.
fn short(kind: &str) -> &str {
    match kind {
        "PrePrepare" => "PreP",
        "PrePrepareReply" => "PrePR",
        "Prepare" => "Prep",
        "Promise" => "Prom",
        "Accept" => "Acc",
        "Accepted" => "Acd",
        "Reject" => "Rej",
        "Heartbeat" => "HB",
        "HeartbeatReply" => "HBR",
        "Propose" => "Prop",
        "Decide" => "Dec",
        "TimeoutNow" => "TNow",
        "InstallSnapshot" => "Snap",
        "SnapshotReply" => "SnapR",
        other => other,
    }
}

/// A time in ticks with two decimals.
fn time(t: u64) -> String {
    format!("{}.{:02}", t / TICK, t % TICK)
}

/// Text made safe for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

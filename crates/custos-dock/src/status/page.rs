//! The station's status screen: one tile per slot, readable from two
//! metres, in the language of custos-i18n's catalogues (zh-CN unless the
//! browser or `?lang=` asks for English, or `[dock] status_language` says
//! otherwise).
//!
//! Rendering is a pure function of a [`DockStatus`] and a language, so the
//! page, the live updates (the same `#board` fragment sent as a
//! server-sent event and swapped in by `dock.js`) and the tests see one
//! renderer. Every value is escaped by maud. The page holds no form, no
//! link that changes anything and no inline script or style (the CSP says
//! `script-src 'self'; style-src 'self'`).

use custos_i18n::{catalogue, Catalogue, Lang};
use maud::{html, Markup, DOCTYPE};

use super::{AlertKind, DockStatus, SlotState, SlotStatus};

/// Seconds between reloads of the page when JavaScript is off.
pub const REFRESH_SECONDS: u32 = 2;

/// The whole page.
pub fn page(status: &DockStatus, lang: Lang) -> String {
    let c = catalogue(lang);
    let other = other_lang(lang);
    html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (c.t("dock-title")) " · " (status.dock_id) }
                noscript { meta http-equiv="refresh" content=(REFRESH_SECONDS); }
                link rel="stylesheet" href="/static/dock.css";
                script src="/static/dock.js" defer {}
            }
            body {
                header.top {
                    h1 { (c.t("dock-title")) }
                    span.station { (c.ta("dock-station", &[("id", &status.dock_id)])) }
                    span.live { (c.t("dock-live")) }
                    a.lang href={ "?lang=" (other.tag()) } hreflang=(other.tag()) { (other.own_name()) }
                }
                (board_markup(status, lang))
            }
        }
    }
    .into_string()
}

/// The `#board` fragment: alerts, tiles and the outbox line.
pub fn board(status: &DockStatus, lang: Lang) -> String {
    board_markup(status, lang).into_string()
}

fn other_lang(lang: Lang) -> Lang {
    match lang {
        Lang::En => Lang::ZhCn,
        Lang::ZhCn => Lang::En,
    }
}

fn board_markup(status: &DockStatus, lang: Lang) -> Markup {
    let c = catalogue(lang);
    html! {
        main #board data-dock=(status.dock_id) {
            @if !status.alerts.is_empty() {
                ul.alerts {
                    @for a in &status.alerts {
                        li.alert data-kind=(a.kind.as_str()) {
                            strong { (c.t(&alert_key(a.kind))) }
                            @if let Some(slot) = &a.slot { " · " (c.ta("dock-slot", &[("slot", slot)])) }
                            " · " (a.message)
                            " (" (c.ta("dock-since", &[("secs", &a.since_seconds.to_string())])) ")"
                        }
                    }
                }
            }
            @if status.slots.is_empty() {
                p.none { (c.t("dock-no-slots")) }
            }
            div.tiles {
                @for s in &status.slots { (tile(s, c, lang)) }
            }
            footer.outbox {
                @if status.events_pending > 0 {
                    (c.ta("dock-events-pending", &[("count", &status.events_pending.to_string())]))
                } @else {
                    (c.t("dock-events-none"))
                }
            }
        }
    }
}

fn alert_key(kind: AlertKind) -> String {
    format!("dock-alert-{}", kind.as_str())
}

fn state_key(state: SlotState) -> String {
    format!("dock-state-{}", state.as_str())
}

/// The colour a tile takes.
fn tone(state: SlotState) -> &'static str {
    match state {
        SlotState::Empty => "idle",
        SlotState::Done => "safe",
        SlotState::Incomplete | SlotState::Unplugged | SlotState::Error => "alarm",
        _ => "busy",
    }
}

fn tile(s: &SlotStatus, c: &Catalogue, lang: Lang) -> Markup {
    let other = catalogue(other_lang(lang));
    let banner = match s.state {
        SlotState::Done => Some("dock-banner-safe"),
        SlotState::Unplugged => Some("dock-banner-plug-back"),
        SlotState::Incomplete => Some("dock-banner-incomplete"),
        st if st.busy() => Some("dock-banner-busy"),
        _ => None,
    };
    html! {
        section class={ "tile " (tone(s.state)) }
            data-slot=(s.slot) data-state=(s.state.as_str())
            data-safe=(if s.safe_to_undock { "true" } else { "false" }) {
            header {
                span.slot { (c.ta("dock-slot", &[("slot", &s.slot)])) }
                @if let Some(r) = &s.recorder_id {
                    span.recorder { (r) }
                }
            }
            @if let Some(m) = &s.model {
                p.model { (m) }
            }
            @if let Some(o) = &s.officer_id {
                p.officer {
                    (c.ta("dock-officer", &[("id", o)]))
                    @if let Some(n) = &s.officer_name { " " span.name { (n) } }
                }
            }
            p.state { (c.t(&state_key(s.state))) }
            @if let Some(key) = banner {
                p.banner {
                    (c.t(key))
                    @if matches!(s.state, SlotState::Done | SlotState::Unplugged) || s.state.busy() {
                        " " small lang=(other_lang(lang).tag()) { (other.t(key)) }
                    }
                }
            }
            @if s.state == SlotState::Empty {
                p.hint { (c.t("dock-empty-hint")) }
            } @else if s.segments_total > 0 || s.state.busy() {
                progress max=(s.bytes_total.max(1)) value=(s.bytes_done.min(s.bytes_total.max(1))) {}
                p.counts {
                    (c.ta("dock-segments", &[("done", &s.segments_done.to_string()), ("total", &s.segments_total.to_string())]))
                    " · "
                    (c.ta("dock-bytes", &[("done", &size(s.bytes_done)), ("total", &size(s.bytes_total))]))
                    @if s.state == SlotState::Copying {
                        @if let Some(r) = s.bytes_per_second {
                            " · " (c.ta("dock-rate", &[("rate", &format!("{:.1}", r as f64 / 1e6))]))
                        }
                        @if let Some(eta) = s.eta_seconds {
                            " · " (time_left(c, eta))
                        }
                    }
                }
            }
            ul.notes {
                @if s.segments_failed > 0 {
                    li.failed { (c.ta("dock-failed", &[("count", &s.segments_failed.to_string())])) }
                }
                @if s.state == SlotState::WaitingForLedger {
                    li.waiting { (c.t("dock-waiting-ledger")) }
                }
                @if let Some(clock) = s.clock {
                    @let offset = format!("{:+.1}", clock.offset_ms as f64 / 1000.0);
                    li.clock {
                        @if clock.set { (c.ta("dock-clock-set", &[("offset", &offset)])) }
                        @else if clock.offset_ms.abs() >= 1000 { (c.ta("dock-clock-found", &[("offset", &offset)])) }
                        @else { (c.t("dock-clock-ok")) }
                    }
                }
                @if !s.damaged.is_empty() {
                    li.damaged { (c.ta("dock-damaged", &[("names", &s.damaged.join(", "))])) }
                }
                @if !s.late.is_empty() {
                    li.late { (c.ta("dock-late", &[("names", &s.late.join(", "))])) }
                }
                @if let Some(secs) = s.stuck_seconds {
                    li.stuck { (c.ta("dock-stuck", &[("min", &(secs / 60).to_string())])) }
                }
            }
            @if let Some(m) = &s.message {
                @if !matches!(s.state, SlotState::Done | SlotState::Empty) {
                    p.message { (m) }
                }
            }
        }
    }
}

fn time_left(c: &Catalogue, secs: u64) -> String {
    if secs >= 60 {
        c.ta(
            "dock-time-left-min",
            &[
                ("min", &(secs / 60).to_string()),
                ("sec", &(secs % 60).to_string()),
            ],
        )
    } else {
        c.ta("dock-time-left-sec", &[("sec", &secs.to_string())])
    }
}

/// Bytes for people: decimal units, three significant figures.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else if v >= 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_core::wire::dock::{Alert, ClockNote};

    fn slot(state: SlotState) -> SlotStatus {
        SlotStatus {
            slot: "dir-a".into(),
            state,
            recorder_id: Some("SIM0001".into()),
            model: Some("DSJ-<b>".into()),
            profile: Some("simulated".into()),
            officer_id: Some("100233".into()),
            officer_name: Some("张三".into()),
            segments_total: 7,
            segments_done: 3,
            segments_failed: 0,
            bytes_total: 1_200_000_000,
            bytes_done: 245_000_000,
            bytes_per_second: Some(42_000_000),
            eta_seconds: Some(80),
            safe_to_undock: state == SlotState::Done,
            clock: Some(ClockNote {
                offset_ms: 3_600_200,
                set: true,
            }),
            damaged: vec!["DCIM/0003.MP4".into()],
            late: vec![],
            message: None,
            elapsed_seconds: 12,
            safe_after_seconds: None,
            stuck_seconds: None,
        }
    }

    fn status(slots: Vec<SlotStatus>) -> DockStatus {
        DockStatus {
            dock_id: "station-01".into(),
            slots,
            events_pending: 2,
            oldest_event_age_seconds: Some(5),
            ledger_trouble: Some("connection refused".into()),
            alerts: [
                AlertKind::LedgerUnreachable,
                AlertKind::SlotStuck,
                AlertKind::StoreRefusesWrites,
                AlertKind::DiskNearlyFull,
            ]
            .into_iter()
            .map(|kind| Alert {
                kind,
                slot: (kind == AlertKind::SlotStuck).then(|| "dir-a".into()),
                message: "connection refused".into(),
                since_seconds: 5,
            })
            .collect(),
        }
    }

    #[test]
    fn every_state_has_words_in_both_languages() {
        for lang in Lang::ALL {
            for st in SlotState::ALL {
                let html = page(&status(vec![slot(st)]), lang);
                assert!(
                    !html.contains("dock-"),
                    "{lang:?} {st:?}: a key shows: {html}"
                );
            }
        }
    }

    #[test]
    fn the_page_says_what_an_officer_needs() {
        let zh = page(&status(vec![slot(SlotState::Copying)]), Lang::ZhCn);
        for want in [
            "正在复制视音频",
            "请勿拔出",
            "DO NOT UNPLUG",
            "3 / 7 段",
            "42.0 MB/秒",
            "剩余 1 分 20 秒",
            "已校准",
            "+3600.2",
            "DCIM/0003.MP4",
            "张三",
            "无法连接账本",
            "DSJ-&lt;b&gt;",
        ] {
            assert!(zh.contains(want), "missing {want:?}");
        }
        let en = page(&status(vec![slot(SlotState::Done)]), Lang::En);
        assert!(en.contains("SAFE TO UNDOCK") && en.contains("可以拔出"));
        assert!(en.contains(r#"data-safe="true""#));
        let red = page(&status(vec![slot(SlotState::Unplugged)]), Lang::ZhCn);
        assert!(red.contains("插回继续") && red.contains("tile alarm"));
    }

    #[test]
    fn nothing_on_the_page_changes_state_or_runs_inline() {
        let html = page(&status(vec![slot(SlotState::Copying)]), Lang::En);
        for banned in [
            "<form", "<button", "<input", "onclick", "style=", "<script>",
        ] {
            assert!(!html.contains(banned), "{banned}");
        }
    }

    #[test]
    fn every_key_used_here_exists() {
        let missing = custos_i18n::missing_keys(include_str!("page.rs"));
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(999), "999 B");
        assert_eq!(size(245_000_000), "245 MB");
        assert_eq!(size(1_200_000_000), "1.20 GB");
        assert_eq!(size(12_345_678), "12.3 MB");
    }
}

//! Custos's message catalogues: Fluent (`.ftl`) files for English and
//! Simplified Chinese, embedded in the binary, shared by the web console
//! (custos-server's `ui/`) and the dock's status screen (custos-dock's
//! `status/page.rs`), and the choice of language from a tag (`?lang=`, a
//! cookie, a setting) or `Accept-Language`.
//!
//! Every string a person reads on a console page or the dock's screen comes
//! from here. The dock's keys start with `dock-`. A key missing from a
//! catalogue shows as the key itself (and a warning); the tests compare the
//! catalogues' key sets, and each user's tests check that every key its
//! pages use exists ([`missing_keys`]).
//!
//! This crate must never do I/O: the catalogues are compiled in.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    ZhCn,
}

impl Lang {
    /// Every language, in the order the switcher shows them.
    pub const ALL: [Lang; 2] = [Lang::ZhCn, Lang::En];

    /// The BCP 47 tag (`en`, `zh-CN`).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// The language's own name, for the switcher.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::ZhCn => "简体中文",
        }
    }

    /// A tag from `?lang=` or the cookie: exact, case-insensitive.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let t = tag.trim().to_ascii_lowercase();
        match t.as_str() {
            "en" | "en-us" | "en-gb" => Some(Lang::En),
            "zh-cn" | "zh" | "zh-hans" | "zh-hans-cn" => Some(Lang::ZhCn),
            _ => None,
        }
    }

    /// The best language for an `Accept-Language` header: the first
    /// (by quality, then order) range that is Chinese or English; English
    /// when none is.
    pub fn negotiate(accept: Option<&str>) -> Lang {
        Lang::negotiate_or(accept, Lang::En)
    }

    /// As [`Lang::negotiate`], with `fallback` when the header names
    /// neither language (or there is none).
    pub fn negotiate_or(accept: Option<&str>, fallback: Lang) -> Lang {
        let Some(header) = accept else {
            return fallback;
        };
        let mut ranges: Vec<(f32, usize, &str)> = header
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut it = part.split(';');
                let tag = it.next()?.trim();
                let q = it
                    .filter_map(|p| p.trim().strip_prefix("q="))
                    .filter_map(|v| v.trim().parse::<f32>().ok())
                    .next()
                    .unwrap_or(1.0);
                (q > 0.0 && !tag.is_empty()).then_some((q, i, tag))
            })
            .collect();
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, _, tag) in ranges {
            let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
            match primary.as_str() {
                "zh" => return Lang::ZhCn,
                "en" => return Lang::En,
                _ => {}
            }
        }
        fallback
    }

    fn source(self) -> &'static str {
        match self {
            Lang::En => include_str!("catalogues/en.ftl"),
            Lang::ZhCn => include_str!("catalogues/zh-CN.ftl"),
        }
    }
}

/// A parsed catalogue.
pub struct Catalogue {
    bundle: FluentBundle<FluentResource>,
    lang: Lang,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("lang", &self.lang)
            .finish()
    }
}

fn build(lang: Lang) -> Catalogue {
    // INVARIANT: the embedded catalogues parse (the unit tests parse them).
    let resource = FluentResource::try_new(lang.source().to_owned()).unwrap_or_else(|(r, _)| r);
    let id: LanguageIdentifier = lang
        .tag()
        .parse()
        .unwrap_or_else(|_| LanguageIdentifier::default());
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // Pages are HTML, not bidirectional text: no isolation marks.
    bundle.set_use_isolating(false);
    let _ = bundle.add_resource(resource);
    Catalogue { bundle, lang }
}

/// The catalogue of `lang` (parsed once).
pub fn catalogue(lang: Lang) -> &'static Catalogue {
    static EN: OnceLock<Catalogue> = OnceLock::new();
    static ZH: OnceLock<Catalogue> = OnceLock::new();
    match lang {
        Lang::En => EN.get_or_init(|| build(Lang::En)),
        Lang::ZhCn => ZH.get_or_init(|| build(Lang::ZhCn)),
    }
}

impl Catalogue {
    /// The language.
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// The message `key`; the key itself if the catalogue lacks it.
    pub fn t(&self, key: &str) -> String {
        self.format(key, None)
    }

    /// The message `key` with arguments.
    pub fn ta(&self, key: &str, args: &[(&str, &str)]) -> String {
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            fa.set(*k, FluentValue::from(*v));
        }
        self.format(key, Some(&fa))
    }

    fn format(&self, key: &str, args: Option<&FluentArgs<'_>>) -> String {
        let Some(pattern) = self.bundle.get_message(key).and_then(|m| m.value()) else {
            tracing::warn!(key, lang = self.lang.tag(), "missing message");
            return key.to_owned();
        };
        let mut errors = Vec::new();
        self.bundle
            .format_pattern(pattern, args, &mut errors)
            .into_owned()
    }
}

/// The message ids of a catalogue's source.
pub fn keys(lang: Lang) -> BTreeSet<String> {
    lang.source()
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .collect()
}

/// The keys `code` uses (written `.t("key")` or `.ta("key", …)`) that the
/// catalogues lack: each user of the catalogues runs this on its page code
/// in a test.
pub fn missing_keys(code: &str) -> Vec<String> {
    let en = keys(Lang::En);
    let mut missing = Vec::new();
    for marker in [".t(\"", ".ta(\""] {
        for part in code.split(marker).skip(1) {
            if let Some(key) = part.split('"').next() {
                if !en.contains(key) {
                    missing.push(key.to_owned());
                }
            }
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_parse_without_errors() {
        for lang in Lang::ALL {
            let parsed = FluentResource::try_new(lang.source().to_owned());
            assert!(
                parsed.is_ok(),
                "{}: {:?}",
                lang.tag(),
                parsed.err().map(|e| e.1)
            );
        }
    }

    #[test]
    fn catalogues_have_the_same_keys() {
        let en = keys(Lang::En);
        let zh = keys(Lang::ZhCn);
        assert!(en.len() > 50, "{} keys", en.len());
        let only_en: Vec<_> = en.difference(&zh).collect();
        let only_zh: Vec<_> = zh.difference(&en).collect();
        assert!(
            only_en.is_empty() && only_zh.is_empty(),
            "only in en: {only_en:?}; only in zh-CN: {only_zh:?}"
        );
        for lang in Lang::ALL {
            let c = catalogue(lang);
            for k in &en {
                assert_ne!(c.t(k), *k, "{} lacks a value for {k}", lang.tag());
            }
        }
    }

    #[test]
    fn accept_language_negotiation() {
        assert_eq!(Lang::negotiate(None), Lang::En);
        assert_eq!(Lang::negotiate(Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang::ZhCn);
        assert_eq!(Lang::negotiate(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(
            Lang::negotiate(Some("fr-FR, zh;q=0.5, en;q=0.4")),
            Lang::ZhCn
        );
        assert_eq!(Lang::negotiate(Some("de")), Lang::En);
        assert_eq!(Lang::negotiate(Some("zh;q=0, en")), Lang::En);
        assert_eq!(Lang::from_tag("ZH-cn"), Some(Lang::ZhCn));
        assert_eq!(Lang::from_tag("xx"), None);
        assert_eq!(Lang::negotiate_or(None, Lang::ZhCn), Lang::ZhCn);
        assert_eq!(Lang::negotiate_or(Some("de"), Lang::ZhCn), Lang::ZhCn);
        assert_eq!(Lang::negotiate_or(Some("en-US"), Lang::ZhCn), Lang::En);
    }

    #[test]
    fn missing_keys_are_found_in_code() {
        assert_eq!(
            missing_keys(r#"c.t("search-title") + c.ta("no-such-key", &[])"#),
            vec!["no-such-key".to_owned()]
        );
    }

    #[test]
    fn arguments_are_substituted() {
        let c = catalogue(Lang::En);
        assert!(c
            .ta("signed-in-as", &[("name", "rev-li"), ("role", "reviewer")])
            .contains("rev-li"));
    }
}

//! The console's languages: custos-i18n's catalogues (shared with the
//! dock's status screen), re-exported, and the check that every key the
//! console's pages use exists.

pub use custos_i18n::{catalogue, Catalogue, Lang};

#[cfg(test)]
mod tests {
    #[test]
    fn every_key_used_in_the_pages_exists() {
        // Keys are written as .t("...") / .ta("..." in the page code.
        let code = concat!(
            include_str!("pages/mod.rs"),
            include_str!("pages/sign_in.rs"),
            include_str!("pages/search.rs"),
            include_str!("pages/segments.rs"),
            include_str!("pages/access.rs"),
            include_str!("pages/cases.rs"),
            include_str!("pages/holds.rs"),
            include_str!("pages/audit.rs"),
            include_str!("mod.rs"),
        );
        let missing = custos_i18n::missing_keys(code);
        assert!(
            missing.is_empty(),
            "keys used but not in the catalogues: {missing:?}"
        );
    }
}

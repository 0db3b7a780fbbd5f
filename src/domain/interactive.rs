//! The choices a text campaign can offer under its message: up to three reply buttons, or a list
//! menu of up to ten rows behind one button. The limits are WhatsApp's (the stricter of the two
//! channels), checked once when an admin types them, so a stored campaign always fits.

use serde::{Deserialize, Serialize};

/// WhatsApp reply buttons: at most 3, each title at most 20 characters.
pub const MAX_BUTTONS: usize = 3;
pub const MAX_BUTTON_CHARS: usize = 20;
/// WhatsApp list messages: at most 10 rows, each title at most 24 characters; the button that
/// opens the list at most 20.
pub const MAX_ROWS: usize = 10;
pub const MAX_ROW_CHARS: usize = 24;
/// WhatsApp product lists: at most 30 products; a product list's header at most 60 characters.
pub const MAX_PRODUCTS: usize = 30;
pub const MAX_HEADER_CHARS: usize = 60;
/// Catalogue and retailer ids are Meta's and the shop's own; longer than this is a typo.
const MAX_ID_CHARS: usize = 100;
/// WhatsApp refuses an interactive message whose body is longer than this (characters).
pub const MAX_BODY_CHARS: usize = 1024;

/// Telegram's callback data holds at most 64 bytes, less than 24 characters outside ASCII may
/// need; a title is sent cut to this, and [`Choices::tapped`] finds it again.
pub const MAX_TAP_DATA_BYTES: usize = 64;

/// What a contact can tap under a campaign's text. Each title is what the contact sees and what
/// comes back when they tap it, so `/on <id> clicked:<title>` names it as typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choices {
    Buttons(Vec<String>),
    Menu {
        button: String,
        rows: Vec<String>,
    },
    /// Products from the business's WhatsApp catalogue (`product` for one, `product_list` for
    /// several, under `header`); WhatsApp only.
    Products {
        catalog: String,
        items: Vec<String>,
        header: String,
    },
}

impl Choices {
    /// Reply buttons from `Yes|No|Later`: 1 to 3 distinct, non-empty titles of at most 20
    /// characters each.
    pub fn buttons(typed: &str) -> Result<Choices, String> {
        let titles = titles(typed, "button", MAX_BUTTONS, MAX_BUTTON_CHARS)?;
        Ok(Choices::Buttons(titles))
    }

    /// A list menu: the text of the button that opens it (at most 20 characters) and rows from
    /// `Small|Medium|Large` (1 to 10 distinct, non-empty titles of at most 24 characters each).
    pub fn menu(button: &str, typed_rows: &str) -> Result<Choices, String> {
        let button = button.trim();
        if button.is_empty() {
            return Err("the menu needs a button text".into());
        }
        if button.chars().any(char::is_control) {
            return Err("the menu button text must be on one line".into());
        }
        let n = button.chars().count();
        if n > MAX_BUTTON_CHARS {
            return Err(format!(
                "the menu button text is {n} characters, at most {MAX_BUTTON_CHARS}"
            ));
        }
        let rows = titles(typed_rows, "row", MAX_ROWS, MAX_ROW_CHARS)?;
        Ok(Choices::Menu {
            button: button.to_string(),
            rows,
        })
    }

    /// Products from catalogue `catalog`, retailer ids typed as `sku-1,sku-2` (1 to 30, used
    /// once each); a product list shows `header` (the campaign's title, cut to 60 characters).
    pub fn products(catalog: &str, typed_items: &str, header: &str) -> Result<Choices, String> {
        let catalog = catalog.trim();
        if catalog.is_empty()
            || catalog.len() > MAX_ID_CHARS
            || !catalog.chars().all(|c| c.is_ascii_digit())
        {
            return Err(format!("the catalog id must be digits, got {catalog:?}"));
        }
        let parts: Vec<&str> = typed_items.split(',').map(str::trim).collect();
        if parts.len() > MAX_PRODUCTS {
            return Err(format!(
                "{} products given, at most {MAX_PRODUCTS}",
                parts.len()
            ));
        }
        let mut items: Vec<String> = Vec::with_capacity(parts.len());
        for (i, item) in parts.into_iter().enumerate() {
            if item.is_empty() {
                return Err(format!("retailer id {} is empty", i + 1));
            }
            if item.chars().count() > MAX_ID_CHARS
                || item.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(format!(
                    "retailer id {} must be one word of at most {MAX_ID_CHARS} characters",
                    i + 1
                ));
            }
            if items.iter().any(|t| t == item) {
                return Err(format!("retailer id {item:?} is given twice"));
            }
            items.push(item.to_string());
        }
        let header: String = header.trim().chars().take(MAX_HEADER_CHARS).collect();
        Ok(Choices::Products {
            catalog: catalog.to_string(),
            items,
            header,
        })
    }

    /// The titles a contact can tap, in order (products come back as orders, not titles).
    pub fn titles(&self) -> &[String] {
        match self {
            Choices::Buttons(titles) => titles,
            Choices::Menu { rows, .. } => rows,
            Choices::Products { .. } => &[],
        }
    }

    /// Whether only WhatsApp can show these (a catalogue product has no Telegram form).
    pub fn whatsapp_only(&self) -> bool {
        matches!(self, Choices::Products { .. })
    }

    /// The title a tap that came back as `data` stands for: the title itself, or the one `data`
    /// begins when a channel had to cut it to [`MAX_TAP_DATA_BYTES`].
    pub fn tapped(&self, data: &str) -> Option<&str> {
        let titles = self.titles();
        let exact = titles
            .iter()
            .find(|t| t.to_lowercase() == data.to_lowercase());
        // Cutting at a character boundary leaves at least 61 of the 64 bytes.
        let cut = || {
            (data.len() + 4 > MAX_TAP_DATA_BYTES)
                .then(|| {
                    titles
                        .iter()
                        .find(|t| t.len() > data.len() && t.starts_with(data))
                })
                .flatten()
        };
        exact.or_else(cut).map(String::as_str)
    }

    /// One line for `/campaign show` and the console: `buttons: Yes | No`.
    pub fn describe(&self) -> String {
        match self {
            Choices::Buttons(titles) => format!("buttons: {}", titles.join(" | ")),
            Choices::Menu { button, rows } => {
                format!("menu: {button} [{}]", rows.join(" | "))
            }
            Choices::Products { catalog, items, .. } => {
                format!("products: catalog {catalog} [{}]", items.join(", "))
            }
        }
    }

    /// The stored form (JSON), read back by [`Choices::from_stored`].
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).expect("choices serialize")
    }

    pub fn from_stored(stored: &str) -> Result<Choices, String> {
        serde_json::from_str(stored).map_err(|e| format!("stored choices are unreadable: {e}"))
    }
}

/// `a|b|c` split on `|`, trimmed, each checked against the limits.
fn titles(typed: &str, what: &str, max: usize, max_chars: usize) -> Result<Vec<String>, String> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Err(format!("give at least one {what} title"));
    }
    let parts: Vec<&str> = typed.split('|').map(str::trim).collect();
    if parts.len() > max {
        return Err(format!("{} {what}s given, at most {max}", parts.len()));
    }
    let mut titles: Vec<String> = Vec::with_capacity(parts.len());
    for (i, title) in parts.into_iter().enumerate() {
        if title.is_empty() {
            return Err(format!("{what} {} is empty", i + 1));
        }
        if title.chars().any(char::is_control) {
            return Err(format!("{what} {} must be on one line", i + 1));
        }
        let n = title.chars().count();
        if n > max_chars {
            return Err(format!(
                "{what} {} is {n} characters, at most {max_chars}",
                i + 1
            ));
        }
        if titles
            .iter()
            .any(|t| t.to_lowercase() == title.to_lowercase())
        {
            return Err(format!("{what} {:?} is given twice", title));
        }
        titles.push(title.to_string());
    }
    Ok(titles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_within_the_limits() {
        assert_eq!(
            Choices::buttons(" Yes | No|Later "),
            Ok(Choices::Buttons(vec![
                "Yes".into(),
                "No".into(),
                "Later".into()
            ]))
        );
        assert_eq!(
            Choices::buttons(&"x".repeat(20)),
            Ok(Choices::Buttons(vec!["x".repeat(20)]))
        );
    }

    #[test]
    fn buttons_over_the_limits_are_refused() {
        assert_eq!(
            Choices::buttons("a|b|c|d").unwrap_err(),
            "4 buttons given, at most 3"
        );
        assert_eq!(
            Choices::buttons(&"x".repeat(21)).unwrap_err(),
            "button 1 is 21 characters, at most 20"
        );
        assert_eq!(Choices::buttons("a||b").unwrap_err(), "button 2 is empty");
        assert_eq!(
            Choices::buttons("Yes|yes").unwrap_err(),
            "button \"yes\" is given twice"
        );
        assert!(Choices::buttons("  ").is_err());
    }

    #[test]
    fn menus_within_and_over_the_limits() {
        let rows: Vec<String> = (1..=10).map(|i| format!("Row {i}")).collect();
        assert_eq!(
            Choices::menu("Pick one", &rows.join("|")),
            Ok(Choices::Menu {
                button: "Pick one".into(),
                rows: rows.clone()
            })
        );
        let eleven = format!("{}|Row 11", rows.join("|"));
        assert_eq!(
            Choices::menu("Pick", &eleven).unwrap_err(),
            "11 rows given, at most 10"
        );
        assert_eq!(
            Choices::menu("Pick", &"r".repeat(25)).unwrap_err(),
            "row 1 is 25 characters, at most 24"
        );
        assert!(Choices::menu("Pick", &"r".repeat(24)).is_ok());
        assert!(Choices::menu(&"b".repeat(21), "a").is_err());
    }

    #[test]
    fn a_tap_finds_its_title_even_when_cut_to_64_bytes() {
        let long = "🍕".repeat(20); // 80 bytes
        let choices = Choices::buttons(&format!("Yes|{long}")).unwrap();
        assert_eq!(choices.tapped("yes"), Some("Yes"));
        assert_eq!(choices.tapped(&"🍕".repeat(16)), Some(long.as_str()));
        assert_eq!(choices.tapped(&"🍕".repeat(2)), None);
        assert_eq!(choices.tapped("Ye"), None);
    }

    #[test]
    fn products_within_and_over_the_limits() {
        assert_eq!(
            Choices::products("1234", "sku-1, sku-2", "Spring sale"),
            Ok(Choices::Products {
                catalog: "1234".into(),
                items: vec!["sku-1".into(), "sku-2".into()],
                header: "Spring sale".into()
            })
        );
        let thirty_one: Vec<String> = (1..=31).map(|i| format!("sku-{i}")).collect();
        assert_eq!(
            Choices::products("1234", &thirty_one.join(","), "x").unwrap_err(),
            "31 products given, at most 30"
        );
        assert!(Choices::products("1234", &thirty_one[..30].join(","), "x").is_ok());
        assert!(Choices::products("12a4", "sku-1", "x").is_err());
        assert!(Choices::products("1234", "sku-1,,sku-2", "x").is_err());
        assert!(Choices::products("1234", "sku-1,sku-1", "x").is_err());
        let long = Choices::products("1", "a", &"h".repeat(70)).unwrap();
        assert!(matches!(long, Choices::Products { header, .. } if header.len() == 60));
    }

    #[test]
    fn stored_form_reads_back() {
        for c in [
            Choices::products("1234", "a,b", "Sale").unwrap(),
            Choices::buttons("Yes|STOP").unwrap(),
            Choices::menu("Sizes", "S|M|L").unwrap(),
        ] {
            assert_eq!(Choices::from_stored(&c.to_stored()), Ok(c));
        }
    }
}

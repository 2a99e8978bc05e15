//! The README as HTML at `/readme`, so the start page can link to its sections: the text
//! compiled into the binary, rendered once by pulldown-cmark (CommonMark, tables), each
//! heading given the id GitHub's renderer would give it.

use std::sync::LazyLock;

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd, html};

const README: &str = include_str!("../../../README.md");

/// A heading's anchor as GitHub makes it: lower case, spaces to hyphens, other
/// punctuation dropped.
pub fn slug(heading: &str) -> String {
    heading
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The README's HTML, every heading with its anchor.
pub static HTML: LazyLock<String> = LazyLock::new(|| {
    let mut events: Vec<Event<'_>> = Parser::new_ext(README, Options::ENABLE_TABLES).collect();
    for i in 0..events.len() {
        let Event::Start(Tag::Heading { level, .. }) = events[i] else { continue };
        let text: String = events[i + 1..]
            .iter()
            .take_while(|e| !matches!(e, Event::End(TagEnd::Heading(_))))
            .filter_map(|e| match e {
                Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                _ => None,
            })
            .collect();
        events[i] = Event::Start(Tag::Heading { level, id: Some(slug(&text).into()), classes: vec![], attrs: vec![] });
    }
    let mut rendered = String::with_capacity(README.len() * 2);
    html::push_html(&mut rendered, events.into_iter());
    rendered
});

/// Whether the README has a heading with this anchor (a test holds the start page's links to it).
#[cfg(test)]
pub fn has_section(anchor: &str) -> bool {
    HTML.contains(&format!("id=\"{anchor}\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_get_githubs_anchors() {
        assert_eq!(slug("A subscription: scheduled charges on the test clock"), "a-subscription-scheduled-charges-on-the-test-clock");
        assert_eq!(slug("Operators: `paysession-admin`"), "operators-paysession-admin");
        assert!(has_section("the-two-commands"), "the README starts with its two commands");
        assert!(HTML.contains("<table>"), "tables are rendered");
    }
}

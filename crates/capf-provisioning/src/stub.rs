//! The signed stub `SEP<MAC>.cnf.xml` that goes beside an encrypted config:
//! what enccnf writes, serialised the way lxml (libxml2) pretty-prints it.

use roxmltree::{Document, Node, NodeType, ParsingOptions};

use crate::error::{ProvisioningError, Result};

/// The `<device>` children the stub keeps, in document order (so that a phone
/// that cannot decrypt can still reach CAPF).
pub const STUB_KEPT_ELEMENTS: &[&str] = &[
    "ipAddressMode",
    "loadInformation",
    "capfAuthMode",
    "capfList",
];

/// The stub config enccnf writes for an encrypted `config`: a `<device>`
/// holding `<fullConfig>false</fullConfig>`, the kept elements
/// ([`STUB_KEPT_ELEMENTS`]) copied from `config`, `<certHash>` (lower-case hex
/// MD5 of the phone certificate's DER) and `<encrConfig>true</encrConfig>`.
///
/// The output is what enccnf's lxml writes: an XML declaration, two-space
/// indentation, blank text between elements dropped, text content escaped as
/// libxml2 does (non-ASCII as `&#N;`). Namespace declarations are not copied
/// (phone configs use none). `config` must be UTF-8 XML with a `<device>`
/// root and no DTD.
pub fn stub_config(config: &[u8], cert_hash: &str) -> Result<Vec<u8>> {
    let text = std::str::from_utf8(config).map_err(|e| ProvisioningError::ConfigXml {
        reason: format!("not UTF-8: {e}"),
    })?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: 1_000_000,
        ..ParsingOptions::default()
    };
    let doc =
        Document::parse_with_options(text, options).map_err(|e| ProvisioningError::ConfigXml {
            reason: e.to_string(),
        })?;
    let root = doc.root_element();
    if root.tag_name().namespace().is_some() || root.tag_name().name() != "device" {
        return Err(ProvisioningError::ConfigXml {
            reason: format!(
                "the root element is <{}>, not <device>",
                root.tag_name().name()
            ),
        });
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<device>\n");
    out.push_str("  <fullConfig>false</fullConfig>\n");
    for child in root.children() {
        if child.is_element()
            && child.tag_name().namespace().is_none()
            && STUB_KEPT_ELEMENTS.contains(&child.tag_name().name())
        {
            out.push_str("  ");
            write_node(&mut out, child, 1, true);
            out.push('\n');
        }
    }
    out.push_str("  <certHash>");
    escape_text(&mut out, cert_hash);
    out.push_str("</certHash>\n");
    out.push_str("  <encrConfig>true</encrConfig>\n</device>\n");
    Ok(out.into_bytes())
}

fn is_blank(s: &str) -> bool {
    s.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r'))
}

/// The children libxml2 keeps when parsing with `remove_blank_text`: a
/// blank text node goes unless it is the element's only content or follows
/// (or the element starts with) other text.
fn kept_children<'a, 'input>(node: Node<'a, 'input>) -> Vec<Node<'a, 'input>> {
    let mut kept: Vec<Node<'a, 'input>> = Vec::new();
    for child in node.children() {
        if child.is_text() && is_blank(child.text().unwrap_or_default()) {
            let at_end = child.next_sibling().is_none();
            let keep = if kept.is_empty() {
                at_end
            } else {
                kept.last().is_some_and(|n| n.is_text())
                    || kept.first().is_some_and(|n| n.is_text())
            };
            if !keep {
                continue;
            }
        }
        kept.push(child);
    }
    kept
}

fn qualified_element_name(node: Node<'_, '_>) -> String {
    let name = node.tag_name();
    match name.namespace().and_then(|uri| node.lookup_prefix(uri)) {
        Some(prefix) if !prefix.is_empty() => format!("{prefix}:{}", name.name()),
        _ => name.name().to_owned(),
    }
}

/// Writes a node as libxml2's `xmlNodeDumpOutput` does with `format` on:
/// an element whose children are all non-text is broken over indented
/// lines; one with any text child is written inline.
fn write_node(out: &mut String, node: Node<'_, '_>, level: usize, format: bool) {
    match node.node_type() {
        NodeType::Element => {
            let name = qualified_element_name(node);
            out.push('<');
            out.push_str(&name);
            let input = node.document().input_text();
            for attr in node.attributes() {
                out.push(' ');
                out.push_str(input.get(attr.range_qname()).unwrap_or(attr.name()));
                out.push_str("=\"");
                escape_attribute(out, attr.value());
                out.push('"');
            }
            let children = kept_children(node);
            if children.is_empty() {
                out.push_str("/>");
                return;
            }
            out.push('>');
            let format = format && !children.iter().any(|c| c.is_text());
            for child in &children {
                if format {
                    out.push('\n');
                    push_indent(out, level + 1);
                }
                write_node(out, *child, level + 1, format);
            }
            if format {
                out.push('\n');
                push_indent(out, level);
            }
            out.push_str("</");
            out.push_str(&name);
            out.push('>');
        }
        NodeType::Text => escape_text(out, node.text().unwrap_or_default()),
        NodeType::Comment => {
            out.push_str("<!--");
            out.push_str(node.text().unwrap_or_default());
            out.push_str("-->");
        }
        NodeType::PI => {
            if let Some(pi) = node.pi() {
                out.push_str("<?");
                out.push_str(pi.target);
                if let Some(value) = pi.value {
                    out.push(' ');
                    out.push_str(value);
                }
                out.push_str("?>");
            }
        }
        NodeType::Root => {}
    }
}

fn push_indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn push_char_ref(out: &mut String, c: char) {
    out.push_str("&#");
    out.push_str(&u32::from(c).to_string());
    out.push(';');
}

fn escape_text(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#13;"),
            c if !c.is_ascii() => push_char_ref(out, c),
            c => out.push(c),
        }
    }
}

fn escape_attribute(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if !c.is_ascii() => push_char_ref(out, c),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keeps_only_the_named_children_formatted() {
        let config = b"<?xml version=\"1.0\"?>\n<device xmlns:x=\"urn:x\" a=\"1\">\n <sipProfile/>\n \
            <capfAuthMode>2</capfAuthMode><!-- c -->\n <capfList><capf><a b=\"&quot;&#10;\">x &amp; \xc3\xa9</a><e></e></capf></capfList>\n</device>";
        let stub = String::from_utf8(stub_config(config, "00ff").unwrap()).unwrap();
        assert_eq!(
            stub,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<device>\n  <fullConfig>false</fullConfig>\n  \
             <capfAuthMode>2</capfAuthMode>\n  <capfList>\n    <capf>\n      \
             <a b=\"&quot;&#10;\">x &amp; &#233;</a>\n      <e/>\n    </capf>\n  </capfList>\n  \
             <certHash>00ff</certHash>\n  <encrConfig>true</encrConfig>\n</device>\n"
        );
    }

    #[test]
    fn refuses_what_is_not_a_device_config() {
        assert!(matches!(
            stub_config(b"<phone/>", "x"),
            Err(ProvisioningError::ConfigXml { .. })
        ));
        assert!(matches!(
            stub_config(b"<device>", "x"),
            Err(ProvisioningError::ConfigXml { .. })
        ));
        let dtd = b"<!DOCTYPE d [<!ENTITY a \"aaaa\">]><device>&a;</device>";
        assert!(matches!(
            stub_config(dtd, "x"),
            Err(ProvisioningError::ConfigXml { .. })
        ));
    }
}

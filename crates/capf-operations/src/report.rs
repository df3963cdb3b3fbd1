//! The CAPF report: one row per device, as CUCM's CAPF report has it, in
//! cells that a spreadsheet opens as text (never as a formula) and that
//! the command line's import reads back.

use crate::{Device, time_text};

/// The first characters that make a spreadsheet read a cell as a formula
/// (OWASP's CSV injection list), and the apostrophe, which a spreadsheet
/// reads as "text follows" and the import removes.
const NEUTRALISED: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];

/// A cell as the report writes it: with a leading apostrophe when a
/// spreadsheet would otherwise run it as a formula (it begins with `=`,
/// `+`, `-`, `@`, a tab or a carriage return) or drop its leading zeros (an
/// authentication string that begins with `0`), and when it begins with an
/// apostrophe itself. `capf device import` removes one leading apostrophe
/// from every cell ([`from_spreadsheet_cell`]), so every value reads back
/// as it was.
pub fn spreadsheet_cell(value: &str, digits: bool) -> String {
    let neutralise = value.starts_with(NEUTRALISED) || digits && value.starts_with('0');
    if neutralise {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

/// A cell as written by [`spreadsheet_cell`] (or typed in a spreadsheet),
/// read back: one leading apostrophe removed.
pub fn from_spreadsheet_cell(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

/// The report's header row.
pub const HEADER: [&str; 9] = [
    "Device Name",
    "Description",
    "Security Mode",
    "Authentication String",
    "Authentication Mode",
    "LSC Status",
    "Certificate Operation",
    "Operation Status",
    "Completes By",
];

/// The column of authentication strings.
const AUTH_STRING_COLUMN: usize = 3;

/// A device's row of the report. Without `with_string` (an operator who
/// may not see authentication strings), the string's cell says only
/// whether one is set (`set`, or empty).
pub fn row(device: &Device, with_string: bool) -> [String; 9] {
    let p = &device.policy;
    let string = match (&p.auth_string, with_string) {
        (Some(s), true) => s.expose().to_owned(),
        (Some(_), false) => "set".to_owned(),
        (None, _) => String::new(),
    };
    let mut cells = [
        device.name.as_str().to_owned(),
        device.description.clone(),
        p.security_mode.name().to_owned(),
        string,
        p.auth_mode.label().to_owned(),
        device.lsc_status().to_owned(),
        p.operation.label().to_owned(),
        device.status_label(),
        p.completes_by.map(time_text::format).unwrap_or_default(),
    ];
    for (column, cell) in cells.iter_mut().enumerate() {
        *cell = spreadsheet_cell(cell, column == AUTH_STRING_COLUMN);
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::{from_spreadsheet_cell, spreadsheet_cell};

    #[test]
    fn cells_that_a_spreadsheet_would_run_or_change_are_neutralised() {
        for (value, digits, written) in [
            ("=HYPERLINK(\"x\")", false, "'=HYPERLINK(\"x\")"),
            ("+1", false, "'+1"),
            ("-1", false, "'-1"),
            ("@SUM(A1)", false, "'@SUM(A1)"),
            ("\tx", false, "'\tx"),
            ("\rx", false, "'\rx"),
            ("'quoted'", false, "''quoted'"),
            ("Lobby = east", false, "Lobby = east"),
            ("0123", false, "0123"),
            ("01234567", true, "'01234567"),
            ("12345678", true, "12345678"),
            ("", true, ""),
        ] {
            assert_eq!(spreadsheet_cell(value, digits), written, "{value:?}");
            assert_eq!(from_spreadsheet_cell(written), value, "{written:?}");
        }
    }

    #[test]
    fn a_row_shows_the_string_only_to_those_who_may_see_it() {
        use crate::capf_auth::{AuthMode, AuthString};
        let Ok(name) = crate::DeviceName::parse("SEP001122334455") else {
            panic!("a valid name");
        };
        let mut device = crate::Device::new(name, AuthMode::AuthString);
        device.description = "=cmd".to_owned();
        device.policy.auth_string = AuthString::from_digits(b"01234").ok();
        let shown = super::row(&device, true);
        assert_eq!(shown[0], "SEP001122334455");
        assert_eq!(shown[1], "'=cmd");
        assert_eq!(shown[super::AUTH_STRING_COLUMN], "'01234");
        let hidden = super::row(&device, false);
        assert_eq!(hidden[super::AUTH_STRING_COLUMN], "set");
        device.policy.auth_string = None;
        assert_eq!(super::row(&device, false)[super::AUTH_STRING_COLUMN], "");
    }
}

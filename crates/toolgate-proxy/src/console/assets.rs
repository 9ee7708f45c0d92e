//! The console's stylesheet and script, compiled into the binary: nothing is fetched from
//! anywhere else, and nothing needs building at run time.

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// An asset's text and content type, by file name.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "console.css" => Some((CSS, "text/css; charset=utf-8")),
        "console.js" => Some((JS, "text/javascript; charset=utf-8")),
        _ => None,
    }
}

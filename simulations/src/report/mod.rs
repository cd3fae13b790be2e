//! The simulation report: the data a run produces (`model`) and its two renderings, a
//! terminal comparison table (`table`) and a self-contained HTML page with hand-built SVG
//! charts (`html`, `svg`). Rendering is a pure function of the `Report`, so the same
//! scenario and seed give byte-identical output (STYLE.md section 9).

mod html;
mod model;
mod svg;
mod table;
#[cfg(test)]
mod tests;

pub use html::render_html;
pub use model::*;
pub use table::render_table;

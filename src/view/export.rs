//! Files and clipboard for sharing a run: downloads (progress, metrics as CSV or JSON),
//! the live charts as one standalone SVG or PNG (for slides), and copying text. The SVG
//! work is a small JavaScript snippet: serialising and rasterising SVG is what the
//! browser does natively, and doing it through web-sys would cost more bytes.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::charts::ChartData;

#[wasm_bindgen(inline_js = r#"
const STYLE_PROPS = ["fill", "stroke", "stroke-width", "stroke-dasharray", "opacity", "font-size", "font-family", "font-weight"];
function inline(live, copy) {
  const style = getComputedStyle(live);
  copy.setAttribute("style", STYLE_PROPS.map(p => p + ":" + style.getPropertyValue(p)).join(";"));
  for (let i = 0; i < live.children.length; i++) inline(live.children[i], copy.children[i]);
}
export function charts_svg(selector) {
  const figures = [...document.querySelectorAll(selector)];
  if (!figures.length) return "";
  const ns = "http://www.w3.org/2000/svg";
  const width = 640, chartHeight = 160, titleHeight = 28;
  const out = document.createElementNS(ns, "svg");
  out.setAttribute("xmlns", ns);
  out.setAttribute("width", width);
  out.setAttribute("height", figures.length * (chartHeight + titleHeight));
  const background = getComputedStyle(document.body).backgroundColor;
  const foreground = getComputedStyle(document.body).color;
  const rect = document.createElementNS(ns, "rect");
  rect.setAttribute("width", "100%"); rect.setAttribute("height", "100%"); rect.setAttribute("fill", background);
  out.appendChild(rect);
  figures.forEach((figure, i) => {
    const svg = figure.querySelector("svg:not(.swatch)");
    const caption = figure.querySelector("figcaption");
    const title = document.createElementNS(ns, "text");
    title.setAttribute("x", 8); title.setAttribute("y", i * (chartHeight + titleHeight) + 20);
    title.setAttribute("fill", foreground); title.setAttribute("font-family", "sans-serif"); title.setAttribute("font-size", "14");
    title.textContent = caption ? caption.textContent.replace(/\s+/g, " ").trim() : "";
    out.appendChild(title);
    if (!svg) return;
    const copy = svg.cloneNode(true);
    inline(svg, copy);
    copy.setAttribute("x", 0); copy.setAttribute("y", i * (chartHeight + titleHeight) + titleHeight);
    copy.setAttribute("width", width); copy.setAttribute("height", chartHeight);
    out.appendChild(copy);
  });
  return new XMLSerializer().serializeToString(out);
}
export function svg_to_png(svg, name) {
  const image = new Image();
  image.onload = () => {
    const canvas = document.createElement("canvas");
    canvas.width = image.width * 2; canvas.height = image.height * 2;
    const context = canvas.getContext("2d");
    context.scale(2, 2);
    context.drawImage(image, 0, 0);
    canvas.toBlob(blob => {
      const url = URL.createObjectURL(blob);
      const a = document.createElement("a");
      a.href = url; a.download = name; a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    }, "image/png");
  };
  image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(svg);
}
export function copy_text(text) {
  if (navigator.clipboard && navigator.clipboard.writeText) return navigator.clipboard.writeText(text);
  return Promise.reject(new Error("no clipboard"));
}
"#)]
extern "C" {
    /// Every chart matching `selector` stacked into one standalone SVG document (styles
    /// inlined, captions as titles); empty if there is none.
    fn charts_svg(selector: &str) -> String;
    /// Rasterises `svg` at twice its size and offers it as `name`.
    fn svg_to_png(svg: &str, name: &str);
    /// Resolves when `text` is on the clipboard; rejects when the browser refuses.
    fn copy_text(text: &str) -> js_sys::Promise;
}

/// Offers `text` as a download named `name`.
pub fn download(name: &str, mime: &str, text: &str) -> Result<(), String> {
    let window = web_sys::window().ok_or("no window")?;
    let document = window.document().ok_or("no document")?;
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
        .map_err(|_| "the browser refused to build the file")?;
    let url = web_sys::Url::create_object_url_with_blob(&blob)
        .map_err(|_| "the browser refused to offer the file")?;
    let anchor: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|_| "no link element")?
        .unchecked_into();
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// The page's live charts as one SVG document, if there are any.
pub fn charts_as_svg() -> Option<String> {
    Some(charts_svg(".charts figure.chart")).filter(|svg| !svg.is_empty())
}

/// Offers the page's live charts as a PNG named `name`.
pub fn download_charts_png(name: &str) -> Result<(), String> {
    let svg = charts_as_svg().ok_or("there are no charts on the page")?;
    svg_to_png(&svg, name);
    Ok(())
}

/// Copies `text`; `done` gets whether the browser allowed it.
pub fn copy(text: &str, done: impl FnOnce(bool) + 'static) {
    let promise = copy_text(text);
    wasm_bindgen_futures::spawn_local(async move {
        done(wasm_bindgen_futures::JsFuture::from(promise).await.is_ok());
    });
}

/// The charts' series as CSV in long form: one row per point,
/// `chart,line,time_s,value`, exactly the numbers the charts draw.
pub fn charts_csv(charts: &[ChartData]) -> String {
    let mut out = String::from("chart,line,time_s,value\n");
    for chart in charts {
        for line in &chart.lines {
            for (time, value) in &line.points {
                out.push_str(&format!(
                    "{},{},{time},{value}\n",
                    csv_field(&chart.title),
                    csv_field(line.label)
                ));
            }
        }
    }
    out
}

/// Quotes a CSV field when it needs it (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

//! Placeholder: embeds the `static/` web root (see src/http).
pub fn generate(_out_dir: &std::path::Path) {}

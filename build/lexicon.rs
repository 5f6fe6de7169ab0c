//! Placeholder: compiles the emotion lexicon (see src/emotion).
pub fn generate(_out_dir: &std::path::Path) {}

//! Build-time code generation: the emotion lexicon tables and the embedded static web root.
//! Each generator lives in its own file under `build/` and writes one file into `OUT_DIR`.

#[path = "build/assets.rs"]
mod assets;
#[path = "build/lexicon.rs"]
mod lexicon;

fn main() {
    let out_dir =
        std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    assets::generate(&out_dir);
    lexicon::generate(&out_dir);
}

//! `server_preprocess_model`: one stage of the HomomorphicEncryption.org ML-inference benchmark; see [`more_heorg::stages`].
//! Usage (from the harness root): `server_preprocess_model [INSTANCE]` (the model is the same for every instance).

fn main() -> std::process::ExitCode {
    more_heorg::Stage::ServerPreprocessModel.main()
}

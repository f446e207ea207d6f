//! `client_encode_encrypt_input`: one stage of the HomomorphicEncryption.org ML-inference benchmark; see [`more_heorg::stages`].
//! Usage (from the harness root): `client_encode_encrypt_input INSTANCE` with INSTANCE 0–3.

fn main() -> std::process::ExitCode {
    more_heorg::Stage::ClientEncodeEncryptInput.main()
}

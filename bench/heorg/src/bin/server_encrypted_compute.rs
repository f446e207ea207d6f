//! `server_encrypted_compute`: one stage of the HomomorphicEncryption.org ML-inference benchmark; see [`more_heorg::stages`].
//! Usage (from the harness root): `server_encrypted_compute INSTANCE` with INSTANCE 0–3.

fn main() -> std::process::ExitCode {
    more_heorg::Stage::ServerEncryptedCompute.main()
}

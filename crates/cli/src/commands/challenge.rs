//! `more challenge`: the teacher's side of a class challenge on a running `more-server` — create one
//! (`new`) and read who solved it (`answers`). The token is the server's teacher token, from `--token` or
//! `MORE_TEACHER_TOKEN`, sent as `Authorization: Bearer`.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ureq::http::Request;

use crate::remote::{agent, call, read_json};

/// How long one exchange with the server may take.
const TIMEOUT: Option<Duration> = Some(Duration::from_secs(30));

/// Arguments of `more challenge`.
#[derive(Debug, Args)]
pub struct ChallengeArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Create a challenge: the server encrypts a secret image under a key it drops; prints the id and URLs.
    New(Teacher),
    /// Print who solved a challenge and when, and every answer.
    Answers {
        #[command(flatten)]
        teacher: Teacher,
        /// The challenge's id.
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Args)]
struct Teacher {
    /// The `more-server`, e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    server: String,
    /// The server's teacher token (printed by the server at start unless it was given one).
    #[arg(long, env = "MORE_TEACHER_TOKEN", hide_env_values = true)]
    token: String,
}

/// Runs `more challenge`.
pub fn run(args: ChallengeArgs) -> Result<()> {
    match args.action {
        Action::New(t) => {
            let base = t.server.trim_end_matches('/');
            let url = format!("{base}/api/v1/challenges");
            let request = Request::post(&url)
                .header("authorization", format!("Bearer {}", t.token))
                .header("idempotency-key", format!("{:032x}", rand::random::<u128>()))
                .body(())?;
            let body = read_json(call(&agent(TIMEOUT), "creating the challenge", request)?, &url)?;
            let id = body["id"].as_str().context("the answer has no id")?;
            println!("challenge {id}");
            println!("  for students:  {base}/api/v1/challenges/{id}");
            println!("  ciphertext:    {base}/api/v1/challenges/{id}/ciphertext");
            println!("  answers:       POST {base}/api/v1/challenges/{id}/answers");
            println!("  the lesson:    {base}/web/learn.html#challenge={id}");
            println!("  who solved it: more challenge answers --server {base} --id {id}");
        }
        Action::Answers { teacher: t, id } => {
            let base = t.server.trim_end_matches('/');
            let url = format!("{base}/api/v1/challenges/{id}/answers");
            let request = Request::get(&url).header("authorization", format!("Bearer {}", t.token)).body(())?;
            let body = read_json(call(&agent(TIMEOUT), "reading the answers", request)?, &url)?;
            let solved = body["solved"].as_array().map_or(&[][..], Vec::as_slice);
            let answers = body["answers"].as_array().map_or(&[][..], Vec::as_slice);
            println!(
                "challenge {id} (phrase {}): {} solved, {} answers",
                body["phrase"].as_str().unwrap_or("?"),
                solved.len(),
                answers.len()
            );
            for s in solved {
                println!(
                    "  {}  {}  ({} s)",
                    s["at"].as_str().unwrap_or("?"),
                    s["name"].as_str().unwrap_or("?"),
                    s["seconds"]
                );
            }
        }
    }
    Ok(())
}

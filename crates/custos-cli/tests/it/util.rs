//! What every command-line test uses: the `custos` binary as a command,
//! its output as text, tokens made through it, free loopback ports and
//! child processes that do not outlive their test.

use std::path::Path;
use std::process::{Child, Command, Output};

/// A child process killed (SIGKILL) and reaped when dropped.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nobody listens on (bound, then let go).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `custos` binary of this build, without the client's environment
/// (so that a test's ledger URL and token are the ones it passes).
pub(crate) fn custos() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    for var in ["CUSTOS_CLIENT_LEDGER_URL", "CUSTOS_CLIENT_TOKEN"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Output bytes as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stdout of a command that must have succeeded.
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr: {}\nstdout: {}",
        out.status.code(),
        text(&out.stderr),
        text(&out.stdout)
    );
    text(&out.stdout)
}

/// `custos token create` for the ledger configured in `config`.
pub(crate) fn token(config: &Path, role: &str, name: &str, key: Option<&Path>) -> String {
    custos_testsupport::create_token(custos(), config, role, name, key).unwrap()
}

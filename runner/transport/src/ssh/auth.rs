//! Public-key authentication: identity files (inventory, then ~/.ssh/config, then the OpenSSH
//! defaults) and ssh-agent keys. Private keys are loaded once per run and shared by every
//! host task; an encrypted key's passphrase comes from the options, `$ROOKERY_SSH_PASSPHRASE`,
//! or one prompt on the terminal, and is never logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};

use russh::client::Handle;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::Client;
use crate::PASSPHRASE_ENV;

type Cell = Arc<tokio::sync::Mutex<Option<Result<Arc<PrivateKey>, String>>>>;

/// Loaded private keys (or why a key could not be loaded), by path.
#[derive(Default)]
pub(crate) struct KeyStore {
    cells: StdMutex<HashMap<PathBuf, Cell>>,
    /// One terminal prompt at a time.
    prompt: tokio::sync::Mutex<()>,
    passphrase: Option<String>,
    interactive: bool,
}

impl KeyStore {
    pub(crate) fn new(passphrase: Option<String>, interactive: bool) -> Self {
        KeyStore {
            passphrase: passphrase.or_else(|| std::env::var(PASSPHRASE_ENV).ok()),
            interactive,
            ..Default::default()
        }
    }

    /// The key at `path`, decrypted. Errors are one-line reasons (no secrets).
    pub(crate) async fn load(&self, path: &Path) -> Result<Arc<PrivateKey>, String> {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            cells.entry(path.to_path_buf()).or_default().clone()
        };
        let mut slot = cell.lock().await;
        if let Some(r) = slot.as_ref() {
            return r.clone();
        }
        let r = self.load_uncached(path).await;
        *slot = Some(r.clone());
        r
    }

    async fn load_uncached(&self, path: &Path) -> Result<Arc<PrivateKey>, String> {
        let text = match tokio::fs::read_to_string(path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err("not found".into()),
            Err(e) => return Err(format!("unreadable: {e}")),
        };
        let text = Arc::new(text);
        let decode = |pw: Option<String>| {
            let text = text.clone();
            // bcrypt-pbkdf for encrypted keys is deliberately slow: keep it off the runtime.
            tokio::task::spawn_blocking(move || {
                russh::keys::decode_secret_key(&text, pw.as_deref())
            })
        };
        match decode(None).await {
            Ok(Ok(k)) => return Ok(Arc::new(k)),
            Ok(Err(russh::keys::Error::KeyIsEncrypted)) => {}
            Ok(Err(e)) => return Err(format!("cannot parse: {e}")),
            Err(e) => return Err(format!("key loader failed: {e}")),
        }
        let pw = match &self.passphrase {
            Some(p) => p.clone(),
            None if self.interactive && std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                let _one_at_a_time = self.prompt.lock().await;
                let prompt = format!("Enter passphrase for key {}: ", path.display());
                match tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt)).await
                {
                    Ok(Ok(p)) => p,
                    _ => return Err("encrypted, and reading the passphrase failed".into()),
                }
            }
            None => {
                return Err(format!(
                    "encrypted, and no passphrase given (set {PASSPHRASE_ENV} or run on a terminal)"
                ));
            }
        };
        match decode(Some(pw)).await {
            Ok(Ok(k)) => Ok(Arc::new(k)),
            Ok(Err(_)) => Err("encrypted, and the passphrase is wrong".into()),
            Err(e) => Err(format!("key loader failed: {e}")),
        }
    }
}

async fn rsa_hash(handle: &Handle<Client>, is_rsa: bool) -> Option<HashAlg> {
    if !is_rsa {
        return None;
    }
    // Can wait up to 1 s for the server's EXT_INFO; only RSA keys need it.
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

/// What to try, in order.
pub(crate) struct AuthPlan<'a> {
    pub user: &'a str,
    pub identity_files: &'a [PathBuf],
    pub use_agent: bool,
}

/// Try every credential in the plan; Ok(()) once one is accepted, else the list of what
/// was tried (for the error message).
pub(crate) async fn authenticate(
    handle: &mut Handle<Client>,
    keys: &KeyStore,
    plan: AuthPlan<'_>,
) -> Result<(), Vec<String>> {
    let mut tried = Vec::new();
    let mut offered = Vec::new();
    for path in plan.identity_files {
        let key = match keys.load(path).await {
            Ok(k) => k,
            Err(why) => {
                tried.push(format!("key {} ({why})", path.display()));
                continue;
            }
        };
        offered.push(key.public_key().key_data().clone());
        let hash = rsa_hash(handle, key.algorithm().is_rsa()).await;
        match handle
            .authenticate_publickey(plan.user, PrivateKeyWithHashAlg::new(key, hash))
            .await
        {
            Ok(r) if r.success() => return Ok(()),
            Ok(_) => tried.push(format!("key {} (rejected)", path.display())),
            Err(e) => tried.push(format!("key {} (error: {e})", path.display())),
        }
    }
    if plan.use_agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match russh::keys::agent::client::AgentClient::connect_env().await {
            Ok(mut agent) => match agent.request_identities().await {
                Ok(ids) => {
                    let mut n = 0;
                    for id in ids {
                        let pk = id.public_key().into_owned();
                        if offered.contains(pk.key_data()) {
                            continue;
                        }
                        n += 1;
                        let hash = rsa_hash(handle, pk.algorithm().is_rsa()).await;
                        match handle
                            .authenticate_publickey_with(plan.user, pk, hash, &mut agent)
                            .await
                        {
                            Ok(r) if r.success() => return Ok(()),
                            Ok(_) => {}
                            Err(e) => tracing::debug!("ssh-agent signing failed: {e}"),
                        }
                    }
                    tried.push(format!("ssh-agent ({n} keys rejected)"));
                }
                Err(e) => tried.push(format!("ssh-agent (cannot list keys: {e})")),
            },
            Err(e) => tried.push(format!("ssh-agent (cannot connect: {e})")),
        }
    }
    Err(tried)
}

//! `kxy-server users ...`: account recovery by the operator (see
//! [`crate::identity::recovery`]).

use std::sync::Arc;

use super::UsersCommand;
use crate::Error;
use crate::store::Store;

pub(super) async fn run_users(command: UsersCommand, store: Arc<dyn Store>) -> Result<(), Error> {
    use crate::identity::recovery;
    match command {
        UsersCommand::Unlock { username } => {
            recovery::unlock(store, &username).await?;
            println!("unlocked {username}");
        }
        UsersCommand::ResetPassword { username } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| Error::Startup(format!("cannot read the password: {e}")))?;
            let password = password.trim_end_matches(['\r', '\n']);
            let reset = recovery::reset_password(store, &username, password).await?;
            println!(
                "password of {username} reset; every login ended, {} API key(s) disabled, \
                 the account is unlocked and active",
                reset.keys_disabled
            );
        }
    }
    Ok(())
}

//! Logging in and staying logged in.
//!
//! - **Login** checks the password (equal cost for unknown users) and opens
//!   a *session*: the record behind one login's refresh tokens.
//! - **Lockout**: attempts are counted per username in the store (so across
//!   instances) within a window, *before* the password is checked, with an
//!   atomic increment: a burst of parallel guesses checks at most
//!   `threshold` passwords, and the rest are refused (429) unchecked. A
//!   success clears the count. Unknown usernames and disabled accounts are
//!   counted and answered like wrong passwords, so neither the lock nor the
//!   answer tells which accounts exist, are disabled, or what their password
//!   is.
//! - **Refresh** rotates: the session keeps only the hash of its current
//!   refresh secret and of the ones it replaced. Presenting a replaced one
//!   (a token used twice: one of the users is a thief) revokes the whole
//!   session; presenting a secret the session never had is only refused, so
//!   guessing cannot log anyone out.
//! - **Ending every login**: a password reset or change, or deactivation,
//!   raises the user's `generation`; sessions of an older one are refused,
//!   with their access and refresh tokens, on every instance.
//! - **Logout** puts the access token's id on a deny-list in the store for
//!   its remaining lifetime (every instance checks it) and revokes the
//!   session. A browser may instead show its refresh cookie
//!   ([`AuthService::end_session`]), so logging out works after the access
//!   token expired.

use std::sync::Arc;
use std::time::Duration;

use kxy_core::password::check_password;
use kxy_core::permission::PermissionSet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::passwords::Passwords;
use super::roles::{ADMIN, RoleDirectory};
use super::setup::SetupToken;
use super::tokens::{Claims, RefreshToken, Tokens, now, random_id};
use super::users::{User, UserDirectory, UserView};
use crate::Error;
use crate::store::records::typed;
use crate::store::{Expect, Store};

const SESSIONS: &str = "sessions";

/// How failed logins lock an account.
#[derive(Debug, Clone, Copy)]
pub struct LockoutPolicy {
    /// Failures within `window` that lock the account.
    pub threshold: u64,
    pub window: Duration,
    /// How long a locked account stays locked.
    pub duration: Duration,
}

/// Token lifetimes and the lockout policy.
#[derive(Debug, Clone, Copy)]
pub struct AuthSettings {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub lockout: LockoutPolicy,
}

/// The answer to a login or a refresh.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// The record behind one login's refresh tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    user_id: String,
    /// SHA-256 of the one refresh secret that is valid now.
    secret_hash: String,
    /// SHA-256 of the secrets it replaced, newest last (at most
    /// [`REPLACED_KEPT`]): presenting one again is a reuse.
    #[serde(default)]
    replaced: Vec<String>,
    expires_at: u64,
    revoked: bool,
    /// The user's generation when the session opened.
    #[serde(default)]
    generation: u64,
    /// The user's key generation then: keys this session creates carry it.
    #[serde(default)]
    key_generation: u64,
    /// SHA-256 of the admin page's binding, for a session the page opened:
    /// its refresh cookie only works together with the binding (see
    /// `web::session`).
    #[serde(default)]
    page_binding: Option<String>,
}

impl Session {
    /// Whether `binding` is the admin page's binding of this session.
    fn bound_to(&self, binding: &str) -> bool {
        let given = hex::encode(Sha256::digest(binding.as_bytes()));
        self.page_binding
            .as_ref()
            .is_some_and(|expected| bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
    }
}

/// How many replaced refresh secrets a session remembers.
const REPLACED_KEPT: usize = 64;

/// An authenticated caller of the API.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserView,
    pub permissions: PermissionSet,
    pub via: Via,
    /// The owner's key generation the credential was issued under; keys
    /// it creates carry it, so a key created by a session that a password
    /// change ended (even while the change ran) does not work.
    pub key_generation: u64,
}

impl Caller {
    /// Refuses unless the caller holds every permission of `needed`: nobody
    /// grants, assigns or edits rights beyond their own, nor acts over a user
    /// who holds more (`over` names what carries them, for the message).
    pub fn require_all(&self, needed: &PermissionSet, over: &str) -> Result<(), Error> {
        match needed.iter().find(|p| !self.permissions.allows(p)) {
            None => Ok(()),
            Some(missing) => Err(Error::Forbidden {
                permission: format!(
                    "{missing}, which {over} carries: you cannot grant or act over rights you \
                     do not hold"
                ),
            }),
        }
    }
}

/// How a caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// A login session's access token.
    Token(Claims),
    /// An API key, by id; `scoped` if it holds a subset of its owner's
    /// permissions named at creation.
    ApiKey { id: String, scoped: bool },
}

pub struct AuthService {
    store: Arc<dyn Store>,
    pub users: UserDirectory,
    pub roles: RoleDirectory,
    passwords: Passwords,
    tokens: Tokens,
    settings: AuthSettings,
    /// Needed by the first-run init on a non-loopback bind.
    setup: std::sync::OnceLock<SetupToken>,
}

/// Mark keys for a username: hashed, so any input makes a safe, fixed key.
pub(crate) fn mark_key(kind: &str, username: &str) -> String {
    let digest = Sha256::digest(username.to_lowercase().as_bytes());
    format!("{kind}:{}", hex::encode(&digest[..16]))
}

impl AuthService {
    pub async fn new(
        store: Arc<dyn Store>,
        settings: AuthSettings,
        jwt_secret: Option<&str>,
        derived_signing_key: Option<[u8; 32]>,
    ) -> Result<Self, Error> {
        let tokens = Tokens::new(
            &*store,
            jwt_secret,
            derived_signing_key,
            settings.access_ttl,
            settings.refresh_ttl,
        )
        .await?;
        Ok(AuthService {
            users: UserDirectory::new(Arc::clone(&store)),
            roles: RoleDirectory::new(Arc::clone(&store)),
            passwords: Passwords::new()?,
            store,
            tokens,
            settings,
            setup: std::sync::OnceLock::new(),
        })
    }

    /// From now on, the first-run init needs `token`.
    pub fn require_setup_token(&self, token: SetupToken) {
        let _ = self.setup.set(token);
    }

    /// Whether the first-run init needs a setup token.
    pub fn setup_token_required(&self) -> bool {
        self.setup.get().is_some()
    }

    pub async fn initialized(&self) -> Result<bool, Error> {
        self.users.any().await
    }

    /// Creates the first user, as an administrator; refused once any user
    /// exists (or another instance got there first).
    /// `host` is the request's `Host`: without a setup token (a loopback
    /// bind), only a request addressed to loopback may initialize
    /// ([`super::setup::is_loopback_host`]: DNS rebinding).
    pub async fn init_user(
        &self,
        username: &str,
        password: &str,
        setup_token: Option<&str>,
        host: Option<&str>,
    ) -> Result<UserView, Error> {
        if self.initialized().await? {
            return Err(Error::AlreadyInitialized);
        }
        match self.setup.get() {
            Some(expected) => expected.check(setup_token)?,
            None => {
                if let Some(host) = host.filter(|h| !super::setup::is_loopback_host(h)) {
                    return Err(Error::CrossSite(format!(
                        "the first-run setup of a server bound to loopback answers only \
                         requests to 127.0.0.1, [::1] or localhost, not to {host}: open the \
                         page at one of those, or start kxy-server with --setup-token"
                    )));
                }
            }
        }
        check_password(username, password)
            .map_err(|e| Error::invalid("password", &e.to_string()))?;
        super::users::check_username(username)?;
        let claimed = typed::save(
            &*self.store,
            "settings",
            "initialized",
            &true,
            Expect::Absent,
        )
        .await?;
        if claimed.is_none() {
            return Err(Error::AlreadyInitialized);
        }
        let hash = self.passwords.hash(password.to_owned()).await?;
        let user = self
            .users
            .create(username, None, hash, vec![ADMIN.into()])
            .await?;
        tracing::info!(user = %user.username, "first user created as administrator");
        Ok(UserView::from(&user))
    }

    /// Creates a user (the admin API); checks the password policy and roles.
    pub async fn create_user(
        &self,
        username: &str,
        password: &str,
        email: Option<String>,
        roles: Vec<String>,
    ) -> Result<UserView, Error> {
        super::users::check_username(username)?;
        check_password(username, password)
            .map_err(|e| Error::invalid("password", &e.to_string()))?;
        self.roles.check_exist(&roles).await?;
        let hash = self.passwords.hash(password.to_owned()).await?;
        let user = self.users.create(username, email, hash, roles).await?;
        Ok(UserView::from(&user))
    }

    pub async fn login(&self, username: &str, password: &str) -> Result<TokenPair, Error> {
        let user = self.check_password(username, password).await?;
        self.open_session(&user).await
    }

    /// The active user `username` if `password` is theirs. Counts the
    /// attempt first (see the module doc); a disabled account gets the same
    /// answer as a wrong password.
    async fn check_password(&self, username: &str, password: &str) -> Result<User, Error> {
        self.refuse_if_locked(username).await?;
        let policy = self.settings.lockout;
        let fail = mark_key("fail", username);
        let attempts = self.store.hit_mark(&fail, policy.window).await?;
        // Again after counting: [`Self::lock`] sets the lock before it
        // resets the count, so an attempt counted after the reset sees it.
        self.refuse_if_locked(username).await?;
        if attempts > policy.threshold {
            return Err(self.lock(username).await?);
        }
        let user = self.users.by_username(username).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let right = self.passwords.verify(password.to_owned(), hash).await?;
        match user {
            Some(user) if right && user.active => {
                self.store.clear_mark(&fail).await?;
                Ok(user)
            }
            _ if attempts >= policy.threshold => Err(self.lock(username).await?),
            _ => Err(Error::InvalidCredentials),
        }
    }

    async fn refuse_if_locked(&self, username: &str) -> Result<(), Error> {
        match self.store.mark(&mark_key("lock", username)).await? {
            Some(mark) => Err(Error::Locked {
                retry_after: mark.expires_in.as_secs().max(1),
            }),
            None => Ok(()),
        }
    }

    /// Locks `username` for the lockout duration, then resets the count;
    /// the error to answer with.
    async fn lock(&self, username: &str) -> Result<Error, Error> {
        let policy = self.settings.lockout;
        self.store
            .set_mark(&mark_key("lock", username), policy.duration)
            .await?;
        self.store.clear_mark(&mark_key("fail", username)).await?;
        tracing::warn!("login locked after repeated failures");
        Ok(Error::Locked {
            retry_after: policy.duration.as_secs(),
        })
    }

    async fn open_session(&self, user: &User) -> Result<TokenPair, Error> {
        let session_id = random_id();
        let refresh = RefreshToken::new(&session_id);
        let session = Session {
            user_id: user.id.clone(),
            secret_hash: refresh.secret_hash(),
            replaced: Vec::new(),
            expires_at: now() + self.settings.refresh_ttl.as_secs(),
            revoked: false,
            generation: user.generation,
            key_generation: user.key_generation,
            page_binding: None,
        };
        typed::save(
            &*self.store,
            SESSIONS,
            &session_id,
            &session,
            Expect::Absent,
        )
        .await?;
        self.pair(&user.id, &refresh)
    }

    fn pair(&self, user_id: &str, refresh: &RefreshToken) -> Result<TokenPair, Error> {
        let (access_token, claims) = self.tokens.issue_access(user_id, &refresh.session)?;
        Ok(TokenPair {
            access_token,
            refresh_token: refresh.encode(),
            token_type: "Bearer".into(),
            expires_in: claims.exp - claims.iat,
        })
    }

    /// Binds the session of `refresh_token` (just issued) to the admin page
    /// that holds the answer: from now on it refreshes only with it
    /// ([`Self::refresh_bound`]). The binding is a random value the page
    /// keeps in its own origin's storage, which no other origin can read or
    /// write, unlike cookies, which ignore ports.
    pub async fn bind_to_page(&self, refresh_token: &str) -> Result<String, Error> {
        let presented = RefreshToken::parse(refresh_token).ok_or(Error::Internal)?;
        let (mut session, version) =
            typed::load::<Session>(&*self.store, SESSIONS, &presented.session)
                .await?
                .ok_or(Error::Internal)?;
        let binding = random_id();
        session.page_binding = Some(hex::encode(Sha256::digest(binding.as_bytes())));
        typed::save(
            &*self.store,
            SESSIONS,
            &presented.session,
            &session,
            Expect::Version(version),
        )
        .await?
        .ok_or_else(|| Error::Conflict("the session changed meanwhile; log in again".into()))?;
        Ok(binding)
    }

    /// Whether `binding` is the page binding of the session of
    /// `refresh_token` (false for an unknown or unbound session): which of
    /// the cookies a browser sends is the page's own.
    pub async fn is_bound(&self, refresh_token: &str, binding: &str) -> Result<bool, Error> {
        let Some(presented) = RefreshToken::parse(refresh_token) else {
            return Ok(false);
        };
        let session = typed::load::<Session>(&*self.store, SESSIONS, &presented.session).await?;
        Ok(session.is_some_and(|(session, _)| session.bound_to(binding)))
    }

    /// [`Self::refresh`] for the admin page: the refresh token (its cookie)
    /// must come with the binding of its session. A cookie planted by
    /// another page on this host (its own session, so it has no binding
    /// this page holds) is refused, so the page never resumes as someone
    /// else.
    pub async fn refresh_bound(&self, token: &str, binding: &str) -> Result<TokenPair, Error> {
        self.rotate(token, Some(binding)).await
    }

    /// Exchanges a refresh token for a new pair; reuse revokes the session.
    /// Not for a session the admin page opened: its cookie is sent to every
    /// port of the host, so another port's server can read it; only the
    /// page's route, with the binding, refreshes it ([`Self::refresh_bound`]).
    pub async fn refresh(&self, token: &str) -> Result<TokenPair, Error> {
        self.rotate(token, None).await
    }

    /// The rotation behind both refreshes: the page's, with the binding it
    /// holds (checked first, and an unknown or malformed token answered the
    /// same, so a refusal tells nothing about which sessions exist), and
    /// the programs' (`None`), which refuses the page's sessions.
    async fn rotate(&self, token: &str, page_binding: Option<&str>) -> Result<TokenPair, Error> {
        let not_this_page = || {
            Error::InvalidToken(
                "this browser's session cookie was not issued to this page; log in again".into(),
            )
        };
        let Some(presented) = RefreshToken::parse(token) else {
            return Err(match page_binding {
                Some(_) => not_this_page(),
                None => Error::InvalidToken("not a kxy refresh token".into()),
            });
        };
        let loaded = typed::load::<Session>(&*self.store, SESSIONS, &presented.session).await?;
        if let Some(binding) = page_binding
            && !loaded.as_ref().is_some_and(|(s, _)| s.bound_to(binding))
        {
            return Err(not_this_page());
        }
        let Some((mut session, version)) = loaded else {
            return Err(Error::InvalidToken("unknown refresh token".into()));
        };
        if session.revoked {
            return Err(Error::InvalidToken(
                "this login session was revoked; log in again".into(),
            ));
        }
        if session.expires_at <= now() {
            return Err(Error::InvalidToken(
                "the refresh token has expired; log in again".into(),
            ));
        }
        let presented_hash = presented.secret_hash();
        let current = session
            .secret_hash
            .as_bytes()
            .ct_eq(presented_hash.as_bytes());
        if !bool::from(current) {
            let reused = session
                .replaced
                .iter()
                .any(|old| bool::from(old.as_bytes().ct_eq(presented_hash.as_bytes())));
            if !reused {
                // Not a secret of this session: a guess or garbage. Refusing
                // is enough; revoking would let anyone log anyone out.
                return Err(Error::InvalidToken("unknown refresh token".into()));
            }
            self.revoke_session(&presented.session).await?;
            tracing::warn!(user = %session.user_id, "refresh token reused; session revoked");
            return Err(Error::InvalidToken(
                "this refresh token was already used; the session is revoked, log in again".into(),
            ));
        }
        if page_binding.is_none() && session.page_binding.is_some() {
            // Refused, not revoked: whoever read the cookie cannot use it
            // here, and ending the admin's session would only serve them.
            tracing::warn!(user = %session.user_id, "the admin page's refresh cookie offered to /api/auth/refresh; refused");
            return Err(Error::InvalidToken(
                "this refresh token belongs to a browser session of the admin page; only the \
                 page refreshes it"
                    .into(),
            ));
        }
        let (user, _) =
            self.users.require(&session.user_id).await.map_err(|_| {
                Error::InvalidToken("the user of this session no longer exists".into())
            })?;
        if !user.active || user.generation != session.generation {
            return Err(ended());
        }
        let next = RefreshToken::new(&presented.session);
        let used = std::mem::replace(&mut session.secret_hash, next.secret_hash());
        session.replaced.push(used);
        if session.replaced.len() > REPLACED_KEPT {
            session.replaced.remove(0);
        }
        if typed::save(
            &*self.store,
            SESSIONS,
            &presented.session,
            &session,
            Expect::Version(version),
        )
        .await?
        .is_none()
        {
            // Someone refreshed with the same token at the same moment.
            self.revoke_session(&presented.session).await?;
            return Err(Error::InvalidToken(
                "this refresh token was used twice at once; the session is revoked, log in again"
                    .into(),
            ));
        }
        self.pair(&user.id, &next)
    }

    async fn revoke_session(&self, session_id: &str) -> Result<(), Error> {
        if let Some((mut session, _)) =
            typed::load::<Session>(&*self.store, SESSIONS, session_id).await?
        {
            session.revoked = true;
            typed::save(&*self.store, SESSIONS, session_id, &session, Expect::Any).await?;
        }
        Ok(())
    }

    /// Ends the login session `token` (a refresh token) belongs to: how a
    /// browser logs out by its cookie, even once its access token has run
    /// out. A token the session never issued ends nothing (a session id
    /// alone, which access tokens carry, must not log anyone out).
    pub async fn end_session(&self, token: &str) -> Result<(), Error> {
        let Some(presented) = RefreshToken::parse(token) else {
            return Ok(());
        };
        let Some((session, _)) =
            typed::load::<Session>(&*self.store, SESSIONS, &presented.session).await?
        else {
            return Ok(());
        };
        let hash = presented.secret_hash();
        let issued = std::iter::once(&session.secret_hash)
            .chain(&session.replaced)
            .any(|known| bool::from(known.as_bytes().ct_eq(hash.as_bytes())));
        if issued && !session.revoked {
            self.revoke_session(&presented.session).await?;
        }
        Ok(())
    }

    /// Ends the caller's session: this access token and every refresh
    /// token of its login stop working, on every instance.
    pub async fn logout(&self, caller: &Caller) -> Result<(), Error> {
        let Via::Token(token) = &caller.via else {
            return Err(Error::invalid(
                "authorization",
                "logout ends a login session; disable or delete an API key instead",
            ));
        };
        let remaining = token.exp.saturating_sub(now()) + 60;
        self.store
            .set_mark(
                &format!("deny:{}", token.jti),
                Duration::from_secs(remaining),
            )
            .await?;
        self.revoke_session(&token.sid).await
    }

    /// The caller behind a bearer access token.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, Error> {
        let claims = self.tokens.verify_access(token)?;
        if self
            .store
            .mark(&format!("deny:{}", claims.jti))
            .await?
            .is_some()
        {
            return Err(Error::InvalidToken(
                "the token was revoked (logged out)".into(),
            ));
        }
        let Some((session, _)) =
            typed::load::<Session>(&*self.store, SESSIONS, &claims.sid).await?
        else {
            return Err(Error::InvalidToken(
                "the login session was revoked; log in again".into(),
            ));
        };
        if session.revoked || session.user_id != claims.sub {
            return Err(Error::InvalidToken(
                "the login session was revoked; log in again".into(),
            ));
        }
        let (user, _) = self
            .users
            .get(&claims.sub)
            .await?
            .ok_or_else(|| Error::InvalidToken("the user no longer exists".into()))?;
        if !user.active || user.generation != session.generation {
            return Err(ended());
        }
        let permissions = self.roles.permissions_of(&user.roles).await?;
        Ok(Caller {
            user: UserView::from(&user),
            permissions,
            via: Via::Token(claims),
            key_generation: session.key_generation,
        })
    }

    /// Lifts a lock and forgets failures.
    pub async fn unlock(&self, username: &str) -> Result<(), Error> {
        self.store.clear_mark(&mark_key("lock", username)).await?;
        self.store.clear_mark(&mark_key("fail", username)).await?;
        Ok(())
    }

    /// Whether the account is locked, and for how many more seconds.
    pub async fn locked_for(&self, username: &str) -> Result<Option<u64>, Error> {
        Ok(self
            .store
            .mark(&mark_key("lock", username))
            .await?
            .map(|m| m.expires_in.as_secs().max(1)))
    }

    /// Sets a new password (checked against the policy), ends every login
    /// of the user and unlocks. The caller revokes the user's API keys.
    pub async fn reset_password(&self, user_id: &str, password: &str) -> Result<(), Error> {
        let (mut user, version) = self.users.require(user_id).await?;
        check_password(&user.username, password)
            .map_err(|e| Error::invalid("password", &e.to_string()))?;
        user.password_hash = self.passwords.hash(password.to_owned()).await?;
        user.generation += 1;
        user.key_generation += 1;
        let username = user.username.clone();
        self.users.update(user, version).await?;
        self.unlock(&username).await
    }

    /// The caller changes their own password: the current one must be
    /// right (counted like a login). Every other login ends; the answer is
    /// a new session for the caller. The caller revokes the API keys.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new: &str,
    ) -> Result<TokenPair, Error> {
        if !matches!(caller.via, Via::Token(_)) {
            return Err(Error::invalid(
                "authorization",
                "changing a password needs a login session, not an API key",
            ));
        }
        let user = self.check_password(&caller.user.username, current).await?;
        if user.id != caller.user.id {
            return Err(Error::InvalidCredentials);
        }
        check_password(&user.username, new)
            .map_err(|e| Error::invalid("new_password", &e.to_string()))?;
        let (mut user, version) = self.users.require(&user.id).await?;
        user.password_hash = self.passwords.hash(new.to_owned()).await?;
        user.generation += 1;
        user.key_generation += 1;
        let user = self.users.update(user, version).await?;
        self.open_session(&user).await
    }
}

/// The answer for a session that a password change, reset or deactivation
/// ended.
fn ended() -> Error {
    Error::InvalidToken(
        "this login was ended (the password changed or the account was deactivated); log in \
         again"
            .into(),
    )
}

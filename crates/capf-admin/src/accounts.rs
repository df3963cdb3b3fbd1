//! `/api/v1/accounts` and `/api/v1/tokens` (admin): operator accounts and
//! API tokens. Every change is recorded in the audit log with the
//! operator as actor; passwords and token secrets never are.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use capf_operations::{Account, AccountName, ApiToken, AuditEntry, Role};
use serde::{Deserialize, Serialize};

use crate::body::JsonObject;
use crate::error::ErrorBody;
use crate::{AdminError, AdminState, Operator, password, time_text, token};

/// An account as the API shows it (never its hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    /// Login name.
    pub name: String,
    /// `read-only`, `helpdesk` or `admin`.
    #[schema(value_type = crate::openapi::RoleName)]
    pub role: &'static str,
    /// When it was made.
    pub created_at: String,
    /// When its password was last set.
    pub password_changed_at: String,
}

impl AccountView {
    fn of(a: &Account) -> Self {
        AccountView {
            name: a.name.to_string(),
            role: a.role.as_str(),
            created_at: time_text::format(a.created_at),
            password_changed_at: time_text::format(a.password_changed_at),
        }
    }
}

/// A token as the API shows it (never its secret or hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenView {
    /// The public id.
    pub id: String,
    /// What it is for.
    pub label: String,
    /// `read-only`, `helpdesk` or `admin`.
    #[schema(value_type = crate::openapi::RoleName)]
    pub role: &'static str,
    /// When it was made.
    pub created_at: String,
    /// Who made it.
    pub created_by: Option<String>,
}

impl TokenView {
    fn of(t: &ApiToken) -> Self {
        TokenView {
            id: t.id.clone(),
            label: t.label.clone(),
            role: t.role.as_str(),
            created_at: time_text::format(t.created_at),
            created_by: t.created_by.as_ref().map(ToString::to_string),
        }
    }
}

fn bad<E: std::fmt::Display>(e: E) -> AdminError {
    AdminError::BadRequest(e.to_string())
}

fn account_name(text: &str) -> Result<AccountName, AdminError> {
    AccountName::parse(text).map_err(bad)
}

/// `GET /api/v1/accounts` (admin).
#[utoipa::path(
    get,
    path = "/api/v1/accounts",
    tag = "accounts",
    operation_id = "list_accounts",
    responses(
        (status = 200, description = "Every account", body = Vec<AccountView>),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn list(
    State(state): State<AdminState>,
    operator: Operator,
) -> Result<Json<Vec<AccountView>>, AdminError> {
    operator.require(Role::Admin)?;
    let accounts = state.store(|s| Ok(s.accounts()?)).await?;
    Ok(Json(accounts.iter().map(AccountView::of).collect()))
}

/// `POST /api/v1/accounts` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccount {
    /// Login name: 1 to 64 of A-Z, a-z, 0-9, `.`, `_`, `@`, `-`.
    #[schema(example = "alice", pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    name: String,
    /// `read-only`, `helpdesk` or `admin`.
    #[schema(value_type = crate::openapi::RoleName)]
    role: String,
    /// Password: 8 characters or more (at most 1024 bytes).
    #[schema(min_length = 8)]
    password: String,
}

/// `POST /api/v1/accounts` (admin): adds an account.
#[utoipa::path(
    post,
    path = "/api/v1/accounts",
    tag = "accounts",
    operation_id = "add_account",
    request_body = NewAccount,
    responses(
        (status = 201, description = "Added", body = AccountView),
        (status = 403, description = "Not an admin, or a browser session without its CSRF token", body = ErrorBody),
        (status = 409, description = "The account exists", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn add(
    State(state): State<AdminState>,
    operator: Operator,
    JsonObject(request): JsonObject<NewAccount>,
) -> Result<Response, AdminError> {
    operator.require(Role::Admin)?;
    let name = account_name(&request.name)?;
    let role: Role = request.role.parse().map_err(bad)?;
    let password = request.password;
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| AdminError::Task(e.to_string()))??;
    let now = state.now();
    let account = Account {
        name,
        role,
        password_hash: hash,
        created_at: now,
        password_changed_at: now,
    };
    let view = AccountView::of(&account);
    let actor = operator.actor();
    state
        .store(move |s| {
            s.add_account(&account)?;
            s.record_event(&AuditEntry::account_added(now, &account).by(actor))?;
            Ok(())
        })
        .await?;
    tracing::info!(account = %view.name, role = view.role, actor = %operator.actor(), "account added");
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `PATCH /api/v1/accounts/{name}` body: what changes.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccountChange {
    /// A new role: `read-only`, `helpdesk` or `admin`.
    #[schema(value_type = Option<crate::openapi::RoleName>)]
    role: Option<String>,
    /// A new password (ends the account's sessions): 8 characters or
    /// more (at most 1024 bytes).
    #[schema(min_length = 8)]
    password: Option<String>,
}

/// `PATCH /api/v1/accounts/{name}` (admin): a new role or password. A new
/// password ends the account's sessions.
#[utoipa::path(
    patch,
    path = "/api/v1/accounts/{name}",
    tag = "accounts",
    operation_id = "change_account",
    params(("name" = String, Path, description = "The account's login name")),
    request_body = AccountChange,
    responses(
        (status = 200, description = "The account as it now is", body = AccountView),
        (status = 403, description = "Not an admin, or a browser session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "It is the last admin", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn change(
    State(state): State<AdminState>,
    operator: Operator,
    Path(name): Path<String>,
    JsonObject(request): JsonObject<AccountChange>,
) -> Result<Json<AccountView>, AdminError> {
    operator.require(Role::Admin)?;
    let name = account_name(&name)?;
    let role: Option<Role> = request
        .role
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(bad)?;
    let hash = match request.password {
        Some(password) => Some(
            tokio::task::spawn_blocking(move || password::hash(&password))
                .await
                .map_err(|e| AdminError::Task(e.to_string()))??,
        ),
        None => None,
    };
    let now = state.now();
    let actor = operator.actor();
    let account = state
        .store(move |s| {
            let missing = || AdminError::NotFound(format!("account {name} does not exist"));
            if let Some(role) = role {
                if !s.set_role(&name, role)? {
                    return Err(missing());
                }
                s.record_event(&AuditEntry::account_role_set(now, &name, role).by(actor.clone()))?;
            }
            if let Some(hash) = &hash {
                if !s.set_password(&name, hash, now)? {
                    return Err(missing());
                }
                s.record_event(&AuditEntry::account_password_set(now, &name).by(actor))?;
            }
            s.account(&name)?.ok_or_else(missing)
        })
        .await?;
    tracing::info!(account = %account.name, actor = %operator.actor(), "account changed");
    Ok(Json(AccountView::of(&account)))
}

/// `POST /api/v1/session/password` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OwnPasswordChange {
    /// The password the operator logged in with.
    current_password: String,
    /// The new password: 8 characters or more (at most 1024 bytes).
    #[schema(min_length = 8)]
    new_password: String,
}

/// `POST /api/v1/session/password` (any role, browser sessions only): the
/// operator changes their own password, giving the current one. Every
/// session of the account ends, this one too: log in again.
#[utoipa::path(
    post,
    path = "/api/v1/session/password",
    tag = "session",
    operation_id = "change_own_password",
    request_body = OwnPasswordChange,
    responses(
        (status = 204, description = "Changed; every session of the account has ended"),
        (status = 403, description = "The current password is wrong, the request came with an API token (it has no password), or without the session's CSRF token", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords for the account", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the lockout ends"))),
    ),
    // A token authenticates, and is then refused (403): it has no password.
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn change_own_password(
    State(state): State<AdminState>,
    operator: Operator,
    JsonObject(request): JsonObject<OwnPasswordChange>,
) -> Result<StatusCode, AdminError> {
    if !matches!(operator.via, crate::Via::Session) {
        return Err(AdminError::Refused(
            "an API token has no password: change an account's password as an admin".into(),
        ));
    }
    let now = state.now();
    if let Some(retry_after) = state.inner.throttle.locked(&operator.name, None, now) {
        return Err(AdminError::Throttled { retry_after });
    }
    password::check_new(&request.new_password)?;
    let name = account_name(&operator.name)?;
    let account = {
        let name = name.clone();
        state.store(move |s| Ok(s.account(&name)?)).await?
    }
    .ok_or_else(|| AdminError::NotFound(format!("account {name} does not exist")))?;
    let (current, stored, new) = (
        request.current_password,
        account.password_hash,
        request.new_password,
    );
    let hash = tokio::task::spawn_blocking(move || {
        if password::verify(&current, &stored) {
            password::hash(&new).map(Some)
        } else {
            Ok(None)
        }
    })
    .await
    .map_err(|e| AdminError::Task(e.to_string()))??;
    let Some(hash) = hash else {
        // Counted as a failed login of the account: a taken-over session
        // cannot try passwords without limit.
        let options = state.inner.options.throttle;
        state
            .inner
            .throttle
            .failed(&operator.name, None, now, &options);
        tracing::warn!(account = %operator.name, "own password change refused: wrong current password");
        return Err(AdminError::Refused("the current password is wrong".into()));
    };
    let actor = operator.actor();
    state
        .store(move |s| {
            if !s.set_password(&name, &hash, now)? {
                return Err(AdminError::NotFound(format!(
                    "account {name} does not exist"
                )));
            }
            s.record_event(&AuditEntry::account_password_set(now, &name).by(actor))?;
            Ok(())
        })
        .await?;
    tracing::info!(account = %operator.name, "operator changed their own password");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/accounts/{name}` (admin). The last admin stays (409).
#[utoipa::path(
    delete,
    path = "/api/v1/accounts/{name}",
    tag = "accounts",
    operation_id = "remove_account",
    params(("name" = String, Path, description = "The account's login name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not an admin, or a browser session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "It is the last admin", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn remove(
    State(state): State<AdminState>,
    operator: Operator,
    Path(name): Path<String>,
) -> Result<StatusCode, AdminError> {
    operator.require(Role::Admin)?;
    let name = account_name(&name)?;
    let now = state.now();
    let actor = operator.actor();
    let shown = name.clone();
    state
        .store(move |s| {
            if !s.remove_account(&name)? {
                return Err(AdminError::NotFound(format!(
                    "account {name} does not exist"
                )));
            }
            s.record_event(&AuditEntry::account_removed(now, &name).by(actor))?;
            Ok(())
        })
        .await?;
    tracing::info!(account = %shown, actor = %operator.actor(), "account removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/tokens` (admin).
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "list_tokens",
    responses(
        (status = 200, description = "Every token (never its secret)", body = Vec<TokenView>),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [])),
)]
pub(crate) async fn list_tokens(
    State(state): State<AdminState>,
    operator: Operator,
) -> Result<Json<Vec<TokenView>>, AdminError> {
    operator.require(Role::Admin)?;
    let tokens = state.store(|s| Ok(s.tokens()?)).await?;
    Ok(Json(tokens.iter().map(TokenView::of).collect()))
}

/// `POST /api/v1/tokens` body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    /// What it is for (1 to 200 bytes).
    #[schema(example = "provisioning script", min_length = 1, max_length = 200)]
    label: String,
    /// `read-only`, `helpdesk` or `admin`.
    #[schema(value_type = crate::openapi::RoleName)]
    role: String,
}

/// A token just made: shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// The token's record.
    #[serde(flatten)]
    pub view: TokenView,
    /// `capf_<id>_<secret>`: send it as `Authorization: Bearer ...`. It
    /// cannot be shown again.
    pub token: String,
}

/// `POST /api/v1/tokens` (admin): makes a token and answers it once.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    operation_id = "create_token",
    request_body = NewToken,
    responses(
        (status = 201, description = "Made: the token is in this answer only", body = CreatedToken),
        (status = 403, description = "Not an admin, or a browser session without its CSRF token", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn create_token(
    State(state): State<AdminState>,
    operator: Operator,
    JsonObject(request): JsonObject<NewToken>,
) -> Result<Response, AdminError> {
    operator.require(Role::Admin)?;
    let role: Role = request.role.parse().map_err(bad)?;
    if request.label.is_empty() || request.label.len() > 200 {
        return Err(AdminError::BadRequest(
            "a token's label has 1 to 200 bytes".into(),
        ));
    }
    let now = state.now();
    let created_by = match operator.via {
        crate::Via::Session => AccountName::parse(&operator.name).ok(),
        crate::Via::Token { .. } => None,
    };
    let minted = token::mint(&request.label, role, created_by, now)?;
    let record = minted.record.clone();
    let actor = operator.actor();
    state
        .store(move |s| {
            s.add_token(&record)?;
            s.record_event(&AuditEntry::token_created(now, &record).by(actor))?;
            Ok(())
        })
        .await?;
    tracing::info!(token_id = %minted.record.id, role = %role, actor = %operator.actor(), "API token created");
    let body = CreatedToken {
        view: TokenView::of(&minted.record),
        token: minted.presented,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /api/v1/tokens/{id}` (admin): revokes a token at once.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    operation_id = "remove_token",
    params(("id" = String, Path, description = "The token's public id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Not an admin, or a browser session without its CSRF token", body = ErrorBody),
        (status = 404, description = "No such token", body = ErrorBody),
    ),
    security(("token" = []), ("session" = [], "csrf" = [])),
)]
pub(crate) async fn remove_token(
    State(state): State<AdminState>,
    operator: Operator,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    operator.require(Role::Admin)?;
    let now = state.now();
    let actor = operator.actor();
    let shown = capf_operations::escape_text(&id).into_owned();
    state
        .store(move |s| {
            if !s.remove_token(&id)? {
                return Err(AdminError::NotFound(format!(
                    "token {} does not exist",
                    capf_operations::escape_text(&id)
                )));
            }
            s.record_event(&AuditEntry::token_revoked(now, &id).by(actor))?;
            Ok(())
        })
        .await?;
    tracing::info!(token_id = %shown, actor = %operator.actor(), "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}

//! The sign-up and log-in pages.
//!
//! Both are `ActionForm`s posting to their server function, so they work as plain HTML forms
//! before the WASM has loaded. After hydration the form stays on the page on error (keeping
//! what was typed, with each message beside its field) and moves on to the chat on success.

use leptos::{form::ActionForm, prelude::*};
use leptos_router::hooks::use_query_map;

use crate::{
    api::accounts::{ChangePassword, Login, Register, UpdateSettings, get_settings},
    error::AppError,
    model::{UserView, is_safe_next},
    ui::title::page_title,
};

/// Where to go after signing in: `?next=` when it is a path on this site, else `/chat`.
fn next_path() -> Memo<String> {
    let query = use_query_map();
    Memo::new(move |_| {
        query
            .with(|q| q.get("next"))
            .filter(|next| is_safe_next(next))
            .unwrap_or_else(|| "/chat".to_owned())
    })
}

/// The result of the last submission of a sign-in form, if any.
type Outcome = Signal<Option<Result<UserView, AppError>>>;

/// The result of the last submission of any form.
type AnyOutcome<T> = Signal<Option<Result<T, AppError>>>;

/// Once signed in, load the next page in full: it is rendered for the new session and opens
/// a socket authenticated by the new cookie.
fn go_on_success(value: Outcome, next: Memo<String>) {
    Effect::new(move |_| {
        if let Some(Ok(_)) = value.get() {
            let _ = window().location().assign(&next.get_untracked());
        }
    });
}

/// The message for one field, from the last attempt.
fn field_error<T: Send + Sync + 'static>(
    value: AnyOutcome<T>,
    field: &'static str,
) -> Signal<Option<String>> {
    Signal::derive(move || {
        value.with(|v| match v {
            Some(Err(error)) => error.field_message(field),
            _ => None,
        })
    })
}

/// An error that belongs to no field (wrong credentials, the server being unreachable).
fn form_error<T: Send + Sync + 'static>(value: AnyOutcome<T>) -> Signal<Option<String>> {
    Signal::derive(move || {
        value.with(|v| match v {
            Some(Err(AppError::Invalid(_))) | Some(Ok(_)) | None => None,
            Some(Err(error)) => Some(error.to_string()),
        })
    })
}

/// The log-in page.
#[component]
pub fn LoginPage() -> impl IntoView {
    super::mark_interactive();
    let login = ServerAction::<Login>::new();
    let next = next_path();
    let value: Outcome = Signal::derive(move || login.value().get());
    go_on_success(value, next);
    let error = form_error(value);

    page_title("Log in");
    view! {
        <main class="auth">
            <div class="card">
                <h1 class="brand">"Parley"</h1>
                <h2>"Log in"</h2>
                <ActionForm action=login>
                    <Field label="Username" name="username" autocomplete="username"/>
                    <Field
                        label="Password"
                        name="password"
                        kind="password"
                        autocomplete="current-password"
                    />
                    <FormError error/>
                    <button type="submit" disabled=move || login.pending().get()>
                        "Log in"
                    </button>
                </ActionForm>
                <p class="switch">
                    "New to Parley? "
                    <a href=move || with_next("/register", &next.get())>"Create an account"</a>
                </p>
            </div>
        </main>
    }
}

/// The sign-up page.
#[component]
pub fn RegisterPage() -> impl IntoView {
    super::mark_interactive();
    let register = ServerAction::<Register>::new();
    let next = next_path();
    let value: Outcome = Signal::derive(move || register.value().get());
    go_on_success(value, next);
    let error = form_error(value);

    page_title("Sign up");
    view! {
        <main class="auth">
            <div class="card">
                <h1 class="brand">"Parley"</h1>
                <h2>"Create your account"</h2>
                <ActionForm action=register>
                    <Field
                        label="Username"
                        name="username"
                        autocomplete="username"
                        hint="3–32 characters: letters, digits, _ . -"
                        error=field_error(value, "username")
                    />
                    <Field
                        label="Display name"
                        name="display_name"
                        autocomplete="name"
                        hint="How others see you, e.g. Ann’s Ceramics"
                        error=field_error(value, "display_name")
                    />
                    <Field
                        label="Password"
                        name="password"
                        kind="password"
                        autocomplete="new-password"
                        hint="At least 8 characters"
                        error=field_error(value, "password")
                    />
                    <Field
                        label="Confirm password"
                        name="password_confirm"
                        kind="password"
                        autocomplete="new-password"
                        error=field_error(value, "password_confirm")
                    />
                    <FormError error/>
                    <button type="submit" disabled=move || register.pending().get()>
                        "Sign up"
                    </button>
                </ActionForm>
                <p class="switch">
                    "Already have an account? "
                    <a href=move || with_next("/login", &next.get())>"Log in"</a>
                </p>
            </div>
        </main>
    }
}

/// `/settings`: read receipts, and changing the password.
#[component]
pub fn SettingsPage() -> impl IntoView {
    super::mark_interactive();
    let change = ServerAction::<ChangePassword>::new();
    let value: AnyOutcome<()> = Signal::derive(move || change.value().get());
    let error = form_error(value);
    let done = move || matches!(value.get(), Some(Ok(())));
    // A fresh form after a change, so the passwords don't linger in it.
    let form = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if done()
            && let Some(form) = form.get()
        {
            form.reset();
        }
    });

    page_title("Settings");
    view! {
        <main class="auth">
            <div class="card">
                <p class="switch">
                    <a href="/chat">"← Back to your conversations"</a>
                </p>
                <h1>"Settings"</h1>
                <ReadReceiptsSetting/>
                <StorageUsage/>
                <h2>"Change your password"</h2>
                <ActionForm action=change node_ref=form>
                    <Field
                        label="Current password"
                        name="current_password"
                        kind="password"
                        autocomplete="current-password"
                        error=field_error(value, "current_password")
                    />
                    <Field
                        label="New password"
                        name="new_password"
                        kind="password"
                        autocomplete="new-password"
                        hint="At least 8 characters, not a common password"
                        error=field_error(value, "new_password")
                    />
                    <Field
                        label="Confirm new password"
                        name="new_password_confirm"
                        kind="password"
                        autocomplete="new-password"
                        error=field_error(value, "new_password_confirm")
                    />
                    <FormError error/>
                    <p class="form-success" role="status">
                        {move || {
                            done()
                                .then_some(
                                    "Your password has been changed. Every other device was signed out.",
                                )
                        }}
                    </p>
                    <button type="submit" disabled=move || change.pending().get()>
                        "Change password"
                    </button>
                </ActionForm>
            </div>
        </main>
    }
}

/// How much of the person's storage their files take.
#[component]
fn StorageUsage() -> impl IntoView {
    use crate::{api::uploads::current_upload_rules, uploads::format_size};

    let rules = LocalResource::new(current_upload_rules);
    let usage = move || match rules.get() {
        Some(Ok(rules)) => format!(
            "Your files take {} of your {} of storage.",
            format_size(rules.used_bytes),
            format_size(rules.quota_bytes)
        ),
        Some(Err(error)) => error.to_string(),
        None => "Counting your files…".to_owned(),
    };
    view! {
        <h2>"Storage"</h2>
        <p class="storage" data-testid="storage">{usage}</p>
    }
}

/// The read receipts switch, saved as soon as it is flipped.
#[component]
fn ReadReceiptsSetting() -> impl IntoView {
    // Fetched in the browser only: the switch stays disabled until the stored value is known.
    let stored = LocalResource::new(get_settings);
    let update = ServerAction::<UpdateSettings>::new();
    let current = move || match update.value().get() {
        Some(Ok(settings)) => Some(settings.read_receipts),
        _ => stored.get().and_then(Result::ok).map(|s| s.read_receipts),
    };
    let status = move || match update.value().get() {
        Some(Ok(settings)) if settings.read_receipts => {
            Some("Saved. Read receipts are on.".to_owned())
        }
        Some(Ok(_)) => Some("Saved. Read receipts are off.".to_owned()),
        Some(Err(error)) => Some(error.to_string()),
        None => None,
    };
    view! {
        <h2>"Privacy"</h2>
        <div class="field toggle">
            <label>
                <input
                    type="checkbox"
                    name="read_receipts"
                    prop:checked=move || current().unwrap_or(false)
                    disabled=move || current().is_none() || update.pending().get()
                    aria-describedby="read-receipts-hint"
                    on:change=move |ev| {
                        update.dispatch(UpdateSettings {
                            read_receipts: event_target_checked(&ev),
                        });
                    }
                />
                " Read receipts"
            </label>
            <p class="hint" id="read-receipts-hint">
                "When on, the people you talk to see when you have seen their messages, and you "
                "see when they have seen yours. When off, neither: they still see that a message "
                "was delivered."
            </p>
            <p class="form-success" role="status">{status}</p>
        </div>
    }
}

/// `page?next=…`, unless `next` is the default.
fn with_next(page: &str, next: &str) -> String {
    if next == "/chat" {
        page.to_owned()
    } else {
        let encoded: String = encode_query_value(next);
        format!("{page}?next={encoded}")
    }
}

/// Percent-encodes a path for use as a query value.
fn encode_query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' | b'@' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A labelled input with an optional hint and its error underneath.
#[component]
fn Field(
    label: &'static str,
    name: &'static str,
    #[prop(default = "text")] kind: &'static str,
    autocomplete: &'static str,
    #[prop(optional)] hint: Option<&'static str>,
    #[prop(optional, into)] error: Option<Signal<Option<String>>>,
) -> impl IntoView {
    let id = format!("field-{name}");
    let described_by = format!("{name}-hint {name}-error");
    let has_error = move || error.is_some_and(|e| e.get().is_some());
    view! {
        <div class="field" class:invalid=has_error>
            <label for=id.clone()>{label}</label>
            <input
                id=id
                name=name
                type=kind
                autocomplete=autocomplete
                required
                aria-invalid=move || has_error().to_string()
                aria-describedby=described_by
            />
            {hint.map(|hint| view! { <p class="hint" id=format!("{name}-hint")>{hint}</p> })}
            <p class="field-error" id=format!("{name}-error")>
                {move || error.and_then(|e| e.get())}
            </p>
        </div>
    }
}

/// The form-level error line.
#[component]
fn FormError(error: Signal<Option<String>>) -> impl IntoView {
    view! {
        <p class="form-error" role="alert">
            {move || error.get()}
        </p>
    }
}

#[cfg(test)]
mod tests {
    use super::with_next;

    #[test]
    fn next_is_carried_between_the_sign_in_pages() {
        assert_eq!(with_next("/login", "/chat"), "/login");
        assert_eq!(with_next("/login", "/chat/@bob"), "/login?next=/chat/@bob");
        assert_eq!(
            with_next("/login", "/chat/@a b"),
            "/login?next=/chat/@a%20b"
        );
    }
}

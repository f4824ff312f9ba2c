//! The Salesforce half of the configuration: login URL and audience, the JWT bearer
//! credentials (client id, username, RSA key) and the org's id and API version.

use super::values::{
    constant_url, default_audience, is_api_version, parse_http_url, parse_login_url,
    parse_rsa_private_key, unescape_newlines,
};
use super::vars::*;
use super::{
    Credentials, DEFAULT_API_VERSION, DEFAULT_LOGIN_URL, Loader, Needs, SalesforceSettings,
};
use crate::ids::OrgId;
use crate::salesforce::auth::SigningKey;

impl Loader<'_> {
    pub(super) fn load_salesforce(&mut self, needs: Needs) -> SalesforceSettings {
        let login_url = self
            .parse_with(SALESFORCE_LOGIN_URL, parse_login_url)
            .unwrap_or_else(|| constant_url(DEFAULT_LOGIN_URL));
        let audience = self
            .parse_with(SALESFORCE_AUDIENCE, |v| {
                parse_http_url(v).map(|_| v.to_owned()).map_err(|e| {
                    format!(
                        "{e}; usually https://login.salesforce.com or https://test.salesforce.com"
                    )
                })
            })
            .unwrap_or_else(|| default_audience(&login_url).to_owned());
        let client_id = self.get(SALESFORCE_CLIENT_ID);
        let username = self.parse_with(SALESFORCE_USERNAME, |v| {
            // Salesforce usernames are always in email form; catching a pasted display
            // name here beats an opaque `invalid_grant` later.
            let shaped = v
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
                && !v.chars().any(char::is_whitespace);
            if shaped {
                Ok(v.to_owned())
            } else {
                Err(format!(
                    "`{v}` is not a Salesforce username; they look like an email address (integration@example.com)"
                ))
            }
        });
        let key = self.load_private_key();
        let org_id = self.parse_with(SALESFORCE_ORG_ID, |v| {
            OrgId::parse(v).map_err(|e| e.to_string())
        });
        let api_version = self
            .parse_with(SALESFORCE_API_VERSION, |v| {
                if is_api_version(v) {
                    Ok(v.to_owned())
                } else {
                    Err(format!(
                        "`{v}` is not an API version; use the form `{DEFAULT_API_VERSION}`"
                    ))
                }
            })
            .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned());

        if needs.salesforce {
            let why = "to call Salesforce";
            self.require(
                SALESFORCE_CLIENT_ID,
                client_id.is_some(),
                &format!("{why}: the consumer key of the External Client App"),
            );
            // An invalid username has already been reported; don't add "required" on top.
            let username_given = self.get(SALESFORCE_USERNAME).is_some();
            self.require(
                SALESFORCE_USERNAME,
                username_given,
                &format!("{why}: the integration user's username"),
            );
            let key_given = self.get(SALESFORCE_PRIVATE_KEY).is_some()
                || self.get(SALESFORCE_PRIVATE_KEY_FILE).is_some();
            self.require(
                SALESFORCE_PRIVATE_KEY,
                key_given,
                &format!(
                    "{why}: set SALESFORCE_PRIVATE_KEY (PEM text) or SALESFORCE_PRIVATE_KEY_FILE (path); `ipguard keygen` makes one"
                ),
            );
        }

        let credentials = match (client_id, username, key) {
            (Some(client_id), Some(username), Some(key)) => Some(Credentials {
                client_id,
                username,
                key,
            }),
            _ => None,
        };
        SalesforceSettings {
            login_url,
            audience,
            credentials,
            org_id,
            api_version,
        }
    }

    fn load_private_key(&mut self) -> Option<SigningKey> {
        let inline = self.get(SALESFORCE_PRIVATE_KEY);
        let file = self.get(SALESFORCE_PRIVATE_KEY_FILE);
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    SALESFORCE_PRIVATE_KEY_FILE,
                    "set only one of SALESFORCE_PRIVATE_KEY (PEM text) and SALESFORCE_PRIVATE_KEY_FILE (path)",
                );
                None
            }
            (Some(text), None) => {
                let pem = unescape_newlines(&text);
                match parse_rsa_private_key(&pem) {
                    Ok(key) => Some(key),
                    Err(message) => {
                        self.problem(SALESFORCE_PRIVATE_KEY, message);
                        None
                    }
                }
            }
            (None, Some(path)) => {
                let pem = match std::fs::read_to_string(&path) {
                    Ok(pem) => pem,
                    Err(e) => {
                        self.problem(
                            SALESFORCE_PRIVATE_KEY_FILE,
                            format!("cannot read `{path}`: {e}"),
                        );
                        return None;
                    }
                };
                match parse_rsa_private_key(&pem) {
                    Ok(key) => Some(key),
                    Err(message) => {
                        self.problem(SALESFORCE_PRIVATE_KEY_FILE, format!("`{path}`: {message}"));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }
}

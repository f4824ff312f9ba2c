//! The side doors' metadata files (docs/contract.md §9): Session Settings' "Enforce login IP
//! ranges on every request" and an app's IP relaxation, as ipguard deploys them, and the XSD
//! sequences (Metadata API v66.0 WSDL) both ipguard and the simulated org order them by.
//!
//! What Salesforce keeps of what is not in a file decides how each is written:
//! - a Settings file changes only the settings it names, so the Security file names only
//!   `sessionSettings/enforceIpRangesEveryRequest`;
//! - an External Client App's OAuth policies and a connected app are whole components: a
//!   deploy replaces every field, so their file is the record as read with the one field set.

use crate::package::Component;
use crate::xml::Element;
use crate::xml::writer::{metadata_file, set_in_sequence};

/// `ExtlClntAppOauthConfigurablePolicies.ipRelaxationPolicyType` for "Enforce IP
/// restrictions"; an unset value is Salesforce's default, which is the same.
pub const ECA_ENFORCE: &str = "Enforce";
/// `ConnectedAppOauthPolicy.ipRelaxation` for "Enforce IP restrictions".
pub const CONNECTED_APP_ENFORCE: &str = "ENFORCE";

/// The Security settings' full name (`readMetadata('SecuritySettings', ['Security'])`; the
/// package lists it as member `Security` of type `Settings`).
pub const SECURITY_SETTINGS_NAME: &str = "Security";

/// The full name of an External Client App's OAuth policies: `<app>_oauthPlcy`.
pub fn eca_policies_name(app: &str) -> String {
    format!("{app}_oauthPlcy")
}

/// `settings/Security.settings` turning "Enforce login IP ranges on every request" on or off
/// and naming nothing else.
pub fn security_settings(every_request: bool) -> Component {
    Component {
        type_name: "Settings",
        member: SECURITY_SETTINGS_NAME.to_owned(),
        path: format!("settings/{SECURITY_SETTINGS_NAME}.settings"),
        content: format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <SecuritySettings xmlns=\"{ns}\">\n    <sessionSettings>\n        \
             <enforceIpRangesEveryRequest>{every_request}</enforceIpRangesEveryRequest>\n    \
             </sessionSettings>\n</SecuritySettings>\n",
            ns = crate::xml::METADATA_NS
        ),
    }
}

/// `extlClntAppOauthPolicies/<app>_oauthPlcy.ecaOauthPlcy`: the policies as read (`record`,
/// the children of the readMetadata record) with `ipRelaxationPolicyType` set to `Enforce`.
pub fn eca_oauth_policies(app: &str, record: &[Element]) -> Component {
    let mut children = record.to_vec();
    set_in_sequence(
        &mut children,
        ECA_OAUTH_POLICIES_SEQUENCE,
        "ipRelaxationPolicyType",
        ECA_ENFORCE,
    );
    let name = eca_policies_name(app);
    Component {
        type_name: "ExtlClntAppOauthConfigurablePolicies",
        path: format!("extlClntAppOauthPolicies/{name}.ecaOauthPlcy"),
        member: name,
        content: metadata_file("ExtlClntAppOauthConfigurablePolicies", &children),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connected app `{0}` has no OAuth policy to enforce IP restrictions in")]
pub struct NoOauthPolicy(pub String);

/// `connectedApps/<app>.connectedApp`: the app as read with `oauthPolicy/ipRelaxation` set to
/// `ENFORCE`. An app without an OAuth policy has no IP relaxation to set.
pub fn connected_app(app: &str, record: &[Element]) -> Result<Component, NoOauthPolicy> {
    let mut children = record.to_vec();
    let policy = children
        .iter_mut()
        .find(|c| c.name == "oauthPolicy")
        .ok_or_else(|| NoOauthPolicy(app.to_owned()))?;
    set_in_sequence(
        &mut policy.children,
        CONNECTED_APP_OAUTH_POLICY_SEQUENCE,
        "ipRelaxation",
        CONNECTED_APP_ENFORCE,
    );
    Ok(Component {
        type_name: "ConnectedApp",
        member: app.to_owned(),
        path: format!("connectedApps/{app}.connectedApp"),
        content: metadata_file("ConnectedApp", &children),
    })
}

/// `ExtlClntAppOauthConfigurablePolicies` (`Metadata`'s `fullName` and `module` first).
pub const ECA_OAUTH_POLICIES_SEQUENCE: &[&str] = &[
    "fullName",
    "module",
    "apexHandler",
    "clientCredentialsFlowUser",
    "commaSeparatedCustomScopes",
    "commaSeparatedPermissionSet",
    "commaSeparatedProfile",
    "customAttributes",
    "executeHandlerAs",
    "externalClientApplication",
    "guestJwtSessionTimeoutType",
    "guestJwtTimeout",
    "ipRelaxationPolicyType",
    "isClientCredentialsFlowEnabled",
    "isGuestCodeCredFlowEnabled",
    "isTokenExchangeFlowEnabled",
    "label",
    "namedUserJwtSessionTimeoutType",
    "namedUserJwtTimeout",
    "permittedUsersPolicyType",
    "policyAction",
    "refreshTokenPolicyType",
    "refreshTokenValidityPeriod",
    "refreshTokenValidityUnit",
    "requiredSessionLevel",
    "sessionTimeoutInMinutes",
    "singleLogoutUrl",
    "startUrl",
];

/// `ConnectedApp` (`Metadata`'s `fullName` and `module` first).
pub const CONNECTED_APP_SEQUENCE: &[&str] = &[
    "fullName",
    "module",
    "attributes",
    "canvas",
    "canvasConfig",
    "contactEmail",
    "contactPhone",
    "description",
    "iconUrl",
    "infoUrl",
    "ipRanges",
    "label",
    "logoUrl",
    "mobileAppConfig",
    "mobileStartUrl",
    "oauthConfig",
    "oauthPolicy",
    "permissionSetName",
    "plugin",
    "pluginExecutionUser",
    "profileName",
    "samlConfig",
    "sessionPolicy",
    "startUrl",
];

/// `ConnectedAppOauthPolicy`.
pub const CONNECTED_APP_OAUTH_POLICY_SEQUENCE: &[&str] = &[
    "ipRelaxation",
    "isTokenExchangeFlowEnabled",
    "refreshTokenPolicy",
    "singleLogoutUrl",
];

/// `SecuritySettings` (`Metadata`'s `fullName` and `module` first).
pub const SECURITY_SETTINGS_SEQUENCE: &[&str] = &[
    "fullName",
    "module",
    "canUsersGrantLoginAccess",
    "enableAdminLoginAsAnyUser",
    "enableAuditFieldsInactiveOwner",
    "enableAuraSecureEvalPref",
    "enableCoepHeader",
    "enableCoopHeader",
    "enableCrossOrgRedirects",
    "enablePermissionsPolicy",
    "enableRequireHttpsConnection",
    "networkAccess",
    "passwordPolicies",
    "redirectBlockModeEnabled",
    "sendCspForUncommonClients",
    "sessionSettings",
    "singleSignOnSettings",
];

/// `SessionSettings`.
pub const SESSION_SETTINGS_SEQUENCE: &[&str] = &[
    "allowUserAuthenticationByCertificate",
    "allowUserCertBasedAuthenticationWithOcspValidation",
    "auraBoxcarReductionPref",
    "canConfirmEmailChangeInLightningCommunities",
    "canConfirmIdentityBySmsOnly",
    "disableTimeoutWarning",
    "enableBuiltInAuthenticator",
    "enableCSPOnEmail",
    "enableCSRFOnGet",
    "enableCSRFOnPost",
    "enableCacheAndAutocomplete",
    "enableClickjackNonsetupSFDC",
    "enableClickjackNonsetupUser",
    "enableClickjackNonsetupUserHeaderless",
    "enableClickjackSetup",
    "enableCoepHeader",
    "enableContentSniffingProtection",
    "enableCoopHeader",
    "enableLightningLogin",
    "enableLightningLoginOnlyWithUserPerm",
    "enableMFADirectUILoginOptIn",
    "enableOauthCorsPolicy",
    "enablePermissionsPolicy",
    "enablePostForSessions",
    "enableSMSIdentity",
    "enableU2F",
    "enforceIpRangesEveryRequest",
    "enforceUserDeviceRevoked",
    "forceLogoutOnSessionTimeout",
    "forceRelogin",
    "grantCameraAccess",
    "grantMicrophoneAccess",
    "hasRetainedLoginHints",
    "hasUserSwitching",
    "hstsOnForcecomSites",
    "identityConfirmationOnEmailChange",
    "identityConfirmationOnTwoFactorRegistrationEnabled",
    "lockSessionsToDomain",
    "lockSessionsToIp",
    "lockerServiceAPIVersion",
    "lockerServiceCSP",
    "lockerServiceNext",
    "lockerServiceNextControl",
    "lockerTrustedMode",
    "lockerTrustedResources",
    "logoutURL",
    "redirectBlockModeEnabled",
    "redirectionWarning",
    "referrerPolicy",
    "referrerPolicyDirective",
    "requireHttpOnly",
    "sendCspForUncommonClients",
    "sessionTimeout",
    "sidToken3rdPartyAuraApp",
    "skipSFAWhenMFADirectUILogin",
    "terminateUserSessionsWhenAdminResetsPassword",
    "untrustedRedirect",
    "useEAPIRateLimitForConnectAPI",
    "useLocalStorageForLogoutUrl",
    "welcomeEmailTemplateId",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{METADATA_NS, parse};

    fn record(xml: &str) -> Vec<Element> {
        parse(format!("<records xmlns=\"{METADATA_NS}\">{xml}</records>").as_bytes())
            .unwrap()
            .children
    }

    #[test]
    fn eca_policies_keep_every_field_as_read_and_enforce() {
        let read = record(
            "<fullName>IPGuard_oauthPlcy</fullName><commaSeparatedPermissionSet>P</commaSeparatedPermissionSet>\
             <externalClientApplication>IPGuard</externalClientApplication>\
             <ipRelaxationPolicyType>Bypass</ipRelaxationPolicyType><sessionTimeoutInMinutes>30</sessionTimeoutInMinutes>",
        );
        let file = eca_oauth_policies("IPGuard", &read);
        assert_eq!(
            file.path,
            "extlClntAppOauthPolicies/IPGuard_oauthPlcy.ecaOauthPlcy"
        );
        let root = parse(file.content.as_bytes()).unwrap();
        let names: Vec<(&str, &str)> = root
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.text.trim()))
            .collect();
        assert_eq!(
            names,
            [
                ("commaSeparatedPermissionSet", "P"),
                ("externalClientApplication", "IPGuard"),
                ("ipRelaxationPolicyType", "Enforce"),
                ("sessionTimeoutInMinutes", "30"),
            ]
        );
    }

    #[test]
    fn unset_relaxation_is_inserted_in_sequence() {
        let read = record(
            "<externalClientApplication>IPGuard</externalClientApplication><label>L</label>",
        );
        let root = parse(eca_oauth_policies("IPGuard", &read).content.as_bytes()).unwrap();
        let names: Vec<&str> = root.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "externalClientApplication",
                "ipRelaxationPolicyType",
                "label"
            ]
        );
    }

    #[test]
    fn connected_app_enforces_inside_its_oauth_policy() {
        let read = record(
            "<fullName>IPGuard</fullName><contactEmail>a@b.example</contactEmail><label>IPGuard</label>\
             <oauthPolicy><ipRelaxation>BYPASS</ipRelaxation><refreshTokenPolicy>zero</refreshTokenPolicy></oauthPolicy>",
        );
        let file = connected_app("IPGuard", &read).unwrap();
        let root = parse(file.content.as_bytes()).unwrap();
        let policy = root.child(METADATA_NS, "oauthPolicy").unwrap();
        assert_eq!(
            policy.child_text(METADATA_NS, "ipRelaxation"),
            Some("ENFORCE")
        );
        assert_eq!(
            policy.child_text(METADATA_NS, "refreshTokenPolicy"),
            Some("zero")
        );
        assert_eq!(
            root.child_text(METADATA_NS, "contactEmail"),
            Some("a@b.example")
        );
        assert!(connected_app("X", &record("<label>X</label>")).is_err());
    }

    #[test]
    fn security_settings_name_only_the_one_setting() {
        let file = security_settings(true);
        assert_eq!(file.path, "settings/Security.settings");
        let root = parse(file.content.as_bytes()).unwrap();
        assert_eq!(root.children.len(), 1);
        let session = root.child(METADATA_NS, "sessionSettings").unwrap();
        assert_eq!(session.children.len(), 1);
        assert_eq!(
            session.child_text(METADATA_NS, "enforceIpRangesEveryRequest"),
            Some("true")
        );
    }
}

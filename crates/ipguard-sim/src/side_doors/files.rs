//! The side doors' XML: a deployed file read and checked against its XSD sequence (order,
//! booleans, enumerations) into the fields the org keeps, and the kept fields written back as
//! a readMetadata record.

use super::*;
use crate::soap::element;

// ---------------------------------------------------------------------------------------
// Files → content (deploy)

/// Flattens `children` into `(path, text)`: a leaf is `name`, a nested one `parent/name`.
fn flatten(children: &[Element], prefix: &str, out: &mut Fields) {
    for child in children.iter().filter(|c| !c.is_nil()) {
        let path = if prefix.is_empty() {
            child.name.clone()
        } else {
            format!("{prefix}/{}", child.name)
        };
        if child.children.is_empty() {
            out.push((path, child.text.trim().to_owned()));
        } else {
            flatten(&child.children, &path, out);
        }
    }
}

fn root_of(bytes: &[u8], type_name: &str, sequence: &[&str]) -> Result<Element, String> {
    let root = xml::parse(bytes).map_err(|e| format!("Error parsing file: {e}"))?;
    if !root.is(METADATA_NS, type_name) {
        return Err(format!(
            "Error parsing file: the root element must be {type_name} in namespace {METADATA_NS}"
        ));
    }
    schema_order(&root, type_name, sequence)?;
    Ok(root)
}

/// `settings/Security.settings`: the `sessionSettings` it names, validated against the XSD
/// (order, booleans, enumerations). Any other child of SecuritySettings is refused.
pub(crate) fn read_security_settings(bytes: &[u8]) -> Content {
    match security_settings(bytes) {
        Ok(fields) => Content::SessionSettings(fields),
        Err(problem) => Content::Invalid(problem),
    }
}

fn security_settings(bytes: &[u8]) -> Result<Fields, String> {
    let root = root_of(bytes, "SecuritySettings", SECURITY_SETTINGS_SEQUENCE)?;
    let mut fields = Fields::new();
    for child in &root.children {
        match child.name.as_str() {
            "fullName" => continue,
            "sessionSettings" => {}
            _ => {
                return Err(
                    "the simulated org deploys only sessionSettings of SecuritySettings".to_owned(),
                );
            }
        }
        schema_order(child, "SessionSettings", SESSION_SETTINGS_SEQUENCE)?;
        for setting in &child.children {
            let name = setting.name.as_str();
            let value = setting.text.trim();
            if !setting.children.is_empty() {
                return Err(format!(
                    "Error parsing file: Element {name} invalid at this location in type SessionSettings"
                ));
            }
            let valid = match name {
                "sessionTimeout" => SESSION_TIMEOUTS.contains(&value),
                "untrustedRedirect" => {
                    ["AlwaysAllowed", "AllowWithUserPermission", "NeverAllowed"].contains(&value)
                }
                _ if SESSION_TEXT_FIELDS.contains(&name) => true,
                _ => value == "true" || value == "false",
            };
            if !valid {
                // GUESS: the wording of Salesforce's parse error for a bad value.
                return Err(format!(
                    "Error parsing file: '{value}' is not a valid value for sessionSettings.{name}"
                ));
            }
            fields.retain(|(f, _)| f != name);
            fields.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(fields)
}

/// `extlClntAppOauthPolicies/<member>.ecaOauthPlcy`: flat text fields in XSD order;
/// `externalClientApplication` required, `ipRelaxationPolicyType` one of the documented values.
pub(crate) fn read_eca_policies(bytes: &[u8]) -> Content {
    match eca_policies(bytes) {
        Ok(fields) => Content::EcaPolicies(fields),
        Err(problem) => Content::Invalid(problem),
    }
}

fn eca_policies(bytes: &[u8]) -> Result<Fields, String> {
    let type_name = "ExtlClntAppOauthConfigurablePolicies";
    let root = root_of(bytes, type_name, ECA_OAUTH_POLICIES_SEQUENCE)?;
    let mut fields = Fields::new();
    for child in root.children.iter().filter(|c| c.name != "fullName") {
        if !child.children.is_empty() {
            return Err(format!(
                "the simulated org deploys only text fields of {type_name} ({} is not one)",
                child.name
            ));
        }
        fields.push((child.name.clone(), child.text.trim().to_owned()));
    }
    match get(&fields, "externalClientApplication") {
        None | Some("") => {
            return Err("Required field is missing: externalClientApplication".to_owned());
        }
        Some(_) => {}
    }
    if let Some(value) = get(&fields, "ipRelaxationPolicyType")
        && !ECA_RELAXATIONS.contains(&value)
    {
        // GUESS: the wording (the value set is official).
        return Err(format!(
            "Invalid value '{value}' for ipRelaxationPolicyType: expected one of {}",
            ECA_RELAXATIONS.join(", ")
        ));
    }
    Ok(fields)
}

/// `connectedApps/<Name>.connectedApp`, flattened; XSD order (ConnectedApp, its oauthConfig
/// and oauthPolicy); `contactEmail` and `label` required; an `oauthPolicy` needs
/// `ipRelaxation` (one of the four values) and `refreshTokenPolicy` (WSDL: both required).
pub(crate) fn read_connected_app(bytes: &[u8]) -> Content {
    match connected_app(bytes) {
        Ok(fields) => Content::ConnectedApp(fields),
        Err(problem) => Content::Invalid(problem),
    }
}

fn connected_app(bytes: &[u8]) -> Result<Fields, String> {
    let root = root_of(bytes, "ConnectedApp", CONNECTED_APP_SEQUENCE)?;
    if let Some(config) = root.child(METADATA_NS, "oauthConfig") {
        schema_order(
            config,
            "ConnectedAppOauthConfig",
            CONNECTED_APP_OAUTH_CONFIG_SEQUENCE,
        )?;
    }
    if let Some(policy) = root.child(METADATA_NS, "oauthPolicy") {
        schema_order(
            policy,
            "ConnectedAppOauthPolicy",
            CONNECTED_APP_OAUTH_POLICY_SEQUENCE,
        )?;
    }
    let children: Vec<Element> = root
        .children
        .iter()
        .filter(|c| c.name != "fullName")
        .cloned()
        .collect();
    let mut fields = Fields::new();
    flatten(&children, "", &mut fields);
    for required in ["contactEmail", "label"] {
        if get(&fields, required).is_none_or(str::is_empty) {
            return Err(format!("Required field is missing: {required}"));
        }
    }
    if fields
        .iter()
        .any(|(f, _)| f == "oauthPolicy" || f.starts_with("oauthPolicy/"))
    {
        for required in ["ipRelaxation", "refreshTokenPolicy"] {
            if get(&fields, &format!("oauthPolicy/{required}")).is_none_or(str::is_empty) {
                return Err(format!("Required field is missing: oauthPolicy.{required}"));
            }
        }
        let relaxation = get(&fields, "oauthPolicy/ipRelaxation").unwrap_or_default();
        if !CONNECTED_APP_RELAXATIONS.contains(&relaxation) {
            return Err(format!(
                "Invalid value '{relaxation}' for oauthPolicy.ipRelaxation: expected one of {}",
                CONNECTED_APP_RELAXATIONS.join(", ")
            ));
        }
    }
    Ok(fields)
}

// ---------------------------------------------------------------------------------------
// Records → XML (readMetadata)

/// Writes flattened fields back as elements: consecutive paths under one parent share it.
fn write_fields(out: &mut String, fields: &[(String, String)]) {
    let mut i = 0;
    while i < fields.len() {
        let (path, text) = &fields[i];
        let Some((head, _)) = path.split_once('/') else {
            element(out, path, text);
            i += 1;
            continue;
        };
        let mut inner = Vec::new();
        while let Some((h, rest)) = fields.get(i).and_then(|(p, _)| p.split_once('/')) {
            if h != head {
                break;
            }
            inner.push((rest.to_owned(), fields[i].1.clone()));
            i += 1;
        }
        out.push_str(&format!("<{head}>"));
        write_fields(out, &inner);
        out.push_str(&format!("</{head}>"));
    }
}

/// The `Security` record: `fullName` and every stored sessionSettings field in XSD order.
pub(crate) fn write_security_settings(out: &mut String, state: &SimState) {
    let mut fields = state.session_settings.clone();
    sort_by_sequence(&mut fields, SESSION_SETTINGS_SEQUENCE);
    out.push_str("<records xsi:type=\"SecuritySettings\">");
    element(
        out,
        "fullName",
        ipguard_wire::side_doors::SECURITY_SETTINGS_NAME,
    );
    out.push_str("<sessionSettings>");
    write_fields(out, &fields);
    out.push_str("</sessionSettings></records>");
}

/// An app's `<App>_oauthPlcy` record: `fullName`, then the policies in XSD order.
pub(crate) fn write_eca_policies(out: &mut String, app: &EcaRecord) {
    let mut fields = app.policies.clone();
    sort_by_sequence(&mut fields, ECA_OAUTH_POLICIES_SEQUENCE);
    out.push_str("<records xsi:type=\"ExtlClntAppOauthConfigurablePolicies\">");
    element(
        out,
        "fullName",
        &ipguard_wire::side_doors::eca_policies_name(&app.name),
    );
    write_fields(out, &fields);
    out.push_str("</records>");
}

/// A connected app's record: `fullName`, then its fields as stored (XSD order: the defaults
/// are, and a deploy's file was validated to be).
pub(crate) fn write_connected_app(out: &mut String, app: &ConnectedAppRecord) {
    out.push_str("<records xsi:type=\"ConnectedApp\">");
    element(out, "fullName", &app.name);
    write_fields(out, &app.fields);
    out.push_str("</records>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(xml: &str, read: fn(&[u8]) -> Content) -> Content {
        read(xml.as_bytes())
    }

    fn problem(c: Content) -> String {
        match c {
            Content::Invalid(p) => p,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn security_settings_are_validated() {
        let file = |inner: &str| {
            format!("<SecuritySettings xmlns=\"{METADATA_NS}\">{inner}</SecuritySettings>")
        };
        let ok = content(
            &file(
                "<sessionSettings><enforceIpRangesEveryRequest>true</enforceIpRangesEveryRequest><sessionTimeout>TwelveHours</sessionTimeout></sessionSettings>",
            ),
            read_security_settings,
        );
        assert!(matches!(ok, Content::SessionSettings(f) if f.len() == 2));
        assert_eq!(
            problem(content(
                &file(
                    "<sessionSettings><enforceIpRangesEveryRequest>yes</enforceIpRangesEveryRequest></sessionSettings>"
                ),
                read_security_settings
            )),
            "Error parsing file: 'yes' is not a valid value for sessionSettings.enforceIpRangesEveryRequest"
        );
        assert_eq!(
            problem(content(
                &file(
                    "<sessionSettings><sessionTimeout>TwoHours</sessionTimeout><lockSessionsToIp>true</lockSessionsToIp></sessionSettings>"
                ),
                read_security_settings
            )),
            "Error parsing file: Element lockSessionsToIp invalid at this location in type SessionSettings"
        );
        assert_eq!(
            problem(content(
                &file("<networkAccess></networkAccess>"),
                read_security_settings
            )),
            "the simulated org deploys only sessionSettings of SecuritySettings"
        );
        assert!(
            problem(content(
                &file("<sessionSettings/><passwordPolicies/>"),
                read_security_settings
            ))
            .contains("invalid at this location")
        );
    }

    #[test]
    fn connected_apps_need_their_required_fields() {
        let file =
            |inner: &str| format!("<ConnectedApp xmlns=\"{METADATA_NS}\">{inner}</ConnectedApp>");
        let ok = content(
            &file(
                "<contactEmail>a@b</contactEmail><label>L</label><oauthPolicy><ipRelaxation>BYPASS</ipRelaxation><refreshTokenPolicy>zero</refreshTokenPolicy></oauthPolicy>",
            ),
            read_connected_app,
        );
        let Content::ConnectedApp(fields) = ok else {
            panic!("{ok:?}")
        };
        assert_eq!(get(&fields, "oauthPolicy/ipRelaxation"), Some("BYPASS"));
        let mut out = String::new();
        write_fields(&mut out, &fields);
        assert_eq!(
            out,
            "<contactEmail>a@b</contactEmail><label>L</label><oauthPolicy><ipRelaxation>BYPASS</ipRelaxation><refreshTokenPolicy>zero</refreshTokenPolicy></oauthPolicy>"
        );
        assert_eq!(
            problem(content(&file("<label>L</label>"), read_connected_app)),
            "Required field is missing: contactEmail"
        );
        assert_eq!(
            problem(content(
                &file(
                    "<contactEmail>a@b</contactEmail><label>L</label><oauthPolicy><ipRelaxation>BYPASS</ipRelaxation></oauthPolicy>"
                ),
                read_connected_app
            )),
            "Required field is missing: oauthPolicy.refreshTokenPolicy"
        );
        assert!(
            problem(content(
                &file("<contactEmail>a@b</contactEmail><label>L</label><oauthPolicy><ipRelaxation>Bypass</ipRelaxation><refreshTokenPolicy>zero</refreshTokenPolicy></oauthPolicy>"),
                read_connected_app
            ))
            .starts_with("Invalid value 'Bypass'")
        );
    }

    #[test]
    fn eca_policies_need_the_app_and_a_known_relaxation() {
        let file = |inner: &str| {
            format!(
                "<ExtlClntAppOauthConfigurablePolicies xmlns=\"{METADATA_NS}\">{inner}</ExtlClntAppOauthConfigurablePolicies>"
            )
        };
        assert_eq!(
            problem(content(&file("<label>L</label>"), read_eca_policies)),
            "Required field is missing: externalClientApplication"
        );
        assert!(
            problem(content(
                &file("<externalClientApplication>A</externalClientApplication><ipRelaxationPolicyType>ENFORCE</ipRelaxationPolicyType>"),
                read_eca_policies
            ))
            .starts_with("Invalid value 'ENFORCE'")
        );
        assert!(
            problem(content(
                &file("<label>L</label><externalClientApplication>A</externalClientApplication>"),
                read_eca_policies
            ))
            .contains("Element externalClientApplication invalid")
        );
    }
}

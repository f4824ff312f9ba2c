//! Arbitrary bytes as a Metadata API response: XML parse, SOAP fault, then every reader of a
//! response body (checkDeployStatus's DeployResult first). Refused or read, never a panic.
#![no_main]

use ipguard::salesforce::{metadata, soap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = ipguard::xml::parse(data) else {
        return;
    };
    if let Some(fault) = soap::fault(&envelope) {
        let _ = (
            fault.is_transient(),
            fault.is_invalid_session(),
            fault.to_string(),
        );
        return;
    }
    let Ok(body) = soap::body_child(&envelope) else {
        return;
    };
    if let Ok(result) = metadata::read_check_deploy_status(body) {
        let _ = result.failure_messages();
    }
    let _ = metadata::read_deploy_response(body);
    let _ = metadata::read_list_metadata(body);
    let _ = metadata::read_read_metadata(body);
    let _ = metadata::read_security_settings(body);
    let _ = metadata::read_eca_oauth_policies(body);
    let _ = metadata::read_connected_app(body);
});

//! ENABLE (RFC 5161): CONDSTORE and QRESYNC (RFC 7162) are the extensions a client can turn
//! on; anything else is ignored, as the RFC asks.

use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::extensions::enable::CapabilityEnable;
use imap_next::imap_types::response::Data;

use super::condstore::enable_condstore;
use super::Outcome;
use crate::imap::session::Session;

pub fn enable(session: &mut Session, capabilities: Vec1<CapabilityEnable<'static>>) -> Outcome {
    let mut enabled = Vec::new();
    for capability in capabilities.into_inner() {
        match &capability {
            CapabilityEnable::CondStore if !session.condstore => {
                enable_condstore(session);
                enabled.push(capability);
            }
            other if !session.qresync && other.to_string().eq_ignore_ascii_case("QRESYNC") => {
                // QRESYNC implies CONDSTORE (RFC 7162 3.2.3).
                enable_condstore(session);
                session.qresync = true;
                if let Some(selected) = session.selected.as_mut() {
                    selected.qresync = true;
                }
                enabled.push(capability);
            }
            _ => {}
        }
    }
    // ENABLED names only what this command turned on.
    session.pending.push(
        Data::Enabled {
            capabilities: enabled,
        }
        .into(),
    );
    Outcome::ok("ENABLE completed")
}

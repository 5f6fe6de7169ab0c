//! One WebSocket connection as the chat core sees it: its phase, its user, its rooms.

use std::rc::Rc;

use super::inline_vec::InlineVec;
use super::limits::TokenBucket;
use super::room::RoomKey;
use crate::timer_wheel::TimerKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    AwaitingAuth,
    Live,
    /// The core asked the reactor to close the connection; input is ignored until `closed`.
    Closing,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Membership {
    pub room: RoomKey,
    /// Armed while this connection's typing indicator is on in the room.
    pub typing: Option<TimerKey>,
}

pub struct Session {
    /// Tells this session apart from an earlier one on the same `ConnId`, for timers.
    pub serial: u32,
    pub phase: Phase,
    /// The auth deadline while awaiting auth, the token expiry once live.
    pub timer: Option<TimerKey>,
    /// The user's private room (valid once live); its key also identifies the user.
    pub private_room: RoomKey,
    /// Shared with the room events that carry it.
    pub name: Option<Rc<str>>,
    pub bucket: TokenBucket,
    /// Every room this connection is in, the private room included once live.
    pub rooms: InlineVec<Membership, 2>,
}

impl Session {
    #[inline]
    pub fn membership_mut(&mut self, room: RoomKey) -> Option<&mut Membership> {
        self.rooms
            .as_mut_slice()
            .iter_mut()
            .find(|m| m.room == room)
    }

    /// Takes the timer of this connection's typing indicator in `room`, if it is on.
    #[inline(always)]
    pub fn take_typing(&mut self, room: RoomKey) -> Option<TimerKey> {
        let memberships = self.rooms.as_mut_slice();
        memberships
            .iter_mut()
            .find(|m| m.room == room)?
            .typing
            .take()
    }

    pub fn is_member(&self, room: RoomKey) -> bool {
        self.rooms.as_slice().iter().any(|m| m.room == room)
    }
}

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
    /// Set whenever a typing indicator is turned on, and cleared once a message finds none on:
    /// while clear, a message has no membership to search for an indicator to turn off.
    pub typing_may_be_on: bool,
}

impl Session {
    #[inline]
    pub fn membership_mut(&mut self, room: RoomKey) -> Option<&mut Membership> {
        self.rooms
            .as_mut_slice()
            .iter_mut()
            .find(|m| m.room == room)
    }

    /// The membership of `room`, to turn its typing indicator on: marks the session as
    /// possibly typing.
    #[inline]
    pub fn membership_to_type_in(&mut self, room: RoomKey) -> Option<&mut Membership> {
        self.typing_may_be_on = true;
        self.membership_mut(room)
    }

    /// Takes the timer of this connection's typing indicator in `room`, if it is on. Clears
    /// `typing_may_be_on` when no indicator is left on.
    #[inline(always)]
    pub fn take_typing(&mut self, room: RoomKey) -> Option<TimerKey> {
        if !self.typing_may_be_on {
            return None;
        }
        let taken = self
            .membership_mut(room)
            .and_then(|membership| membership.typing.take());
        self.typing_may_be_on = self.rooms.as_slice().iter().any(|m| m.typing.is_some());
        taken
    }

    pub fn is_member(&self, room: RoomKey) -> bool {
        self.rooms.as_slice().iter().any(|m| m.room == room)
    }
}

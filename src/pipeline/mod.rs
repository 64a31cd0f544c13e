//! The pipeline: what happens to a request between intake and the landed commit.
//! [`pusher`](crate::pipeline::pusher) claims workable requests and drives them through [`steps`](crate::pipeline::steps) (gather,
//! authorize, apply, push to try, land); [`watcher`](crate::pipeline::watcher) moves requests waiting on try once
//! their CI run has a result; [`gate`](crate::pipeline::gate) runs a destination's landing gate and
//! [`sheriff`](crate::pipeline::sheriff) watches what landed and backs out what broke it. Every stage change goes through
//! [`Context::transition`](crate::runtime::Context::transition) and so through the state
//! machine in `request::state`. Nothing here names a tracker or a CI system.

pub mod gate;
pub mod pusher;
pub mod sheriff;
pub mod steps;
pub mod watcher;

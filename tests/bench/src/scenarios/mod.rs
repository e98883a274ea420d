//! The scenarios, one module each, in the order [`crate::run`] runs them: each measures titok-plus
//! beside its baseline and adds its rows and JSON keys to the [`crate::report::Report`].

mod ceiling;
mod chat;
mod feed;
mod hot_key;
mod ingest;
mod lag;
mod media;
mod positions;
mod projection;
mod scale_out;
mod stream;
mod topology;

pub(crate) use ceiling::ceiling;
pub(crate) use chat::chat;
pub(crate) use feed::feed;
pub(crate) use hot_key::hot_key;
pub(crate) use ingest::ingest;
pub(crate) use lag::lag;
pub(crate) use media::media;
pub(crate) use positions::positions_check;
pub(crate) use projection::projection;
pub(crate) use scale_out::scale_out_row;
pub(crate) use stream::stream;
pub(crate) use topology::topology_rows;

//! Upload checks and covers: sniff that bytes are a video container (whatever the file name says),
//! take the first frame with ffmpeg when it is installed, and otherwise draw a placeholder PNG.

use std::path::Path;
use std::time::Duration;

/// A recognised video container and the file extension it is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    QuickTime,
    Matroska,
    Avi,
    Flv,
    MpegTs,
    MpegPs,
}

impl Container {
    /// The MIME type (the same mapping as [`titok_events::content_type_of`] on the extension).
    pub fn content_type(self) -> &'static str {
        titok_events::content_type_of(self.extension())
    }

    pub fn extension(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::QuickTime => "mov",
            Container::Matroska => "webm",
            Container::Avi => "avi",
            Container::Flv => "flv",
            Container::MpegTs => "ts",
            Container::MpegPs => "mpg",
        }
    }
}

/// How many leading bytes [`sniff`] looks at (an MPEG transport stream's second sync byte).
pub const SNIFF_BYTES: usize = 189;

/// The ffmpeg that takes covers from videos, if one runs.
#[derive(Clone, Debug, Default)]
pub struct Ffmpeg(Option<std::sync::Arc<std::path::Path>>);

impl Ffmpeg {
    /// The program `program` (a name on `PATH` or a path) if `program -version` succeeds; none
    /// for an empty name or `off`.
    pub fn find(program: &str) -> Ffmpeg {
        if program.is_empty() || program == "off" {
            return Ffmpeg(None);
        }
        let runs = std::process::Command::new(program)
            .arg("-version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        Ffmpeg(runs.then(|| std::path::Path::new(program).into()))
    }

    /// Whether covers come from ffmpeg (otherwise: placeholders).
    pub fn installed(&self) -> bool {
        self.0.is_some()
    }

    /// The first frame of `video` as a JPEG; `None` when there is no ffmpeg or it fails (not a
    /// decodable video, over 15 s).
    pub async fn cover(&self, video: &Path) -> Option<Vec<u8>> {
        let program = self.0.as_deref()?;
        let out = tempfile_path(video, "cover.jpg");
        let run = tokio::process::Command::new(program)
            .args(["-v", "error", "-nostdin", "-y", "-i"])
            .arg(video)
            .args(["-frames:v", "1", "-f", "image2"])
            .arg(&out)
            .kill_on_drop(true)
            .status();
        let status = tokio::time::timeout(Duration::from_secs(15), run)
            .await
            .ok()?
            .ok()?;
        let bytes = if status.success() {
            tokio::fs::read(&out).await.ok()
        } else {
            None
        };
        let _ = tokio::fs::remove_file(&out).await;
        bytes.filter(|b| !b.is_empty())
    }
}

/// Identify a video container by its magic bytes; `None` for anything else.
pub fn sniff(bytes: &[u8]) -> Option<Container> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    if at(4, b"ftyp") {
        return Some(if at(8, b"qt  ") {
            Container::QuickTime
        } else {
            Container::Mp4
        });
    }
    if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        return Some(Container::Matroska);
    }
    if at(0, b"RIFF") && at(8, b"AVI ") {
        return Some(Container::Avi);
    }
    if at(0, b"FLV\x01") {
        return Some(Container::Flv);
    }
    if bytes.len() >= 189 && bytes[0] == 0x47 && bytes[188] == 0x47 {
        return Some(Container::MpegTs);
    }
    if at(0, &[0x00, 0x00, 0x01, 0xBA]) {
        return Some(Container::MpegPs);
    }
    None
}

fn tempfile_path(video: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = video
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".");
    name.push(suffix);
    video.with_file_name(name)
}

/// A `width`×`height` PNG with a diagonal gradient whose colours derive from `seed`.
pub fn placeholder_png(width: u32, height: u32, seed: i64) -> Vec<u8> {
    let hue = seed.unsigned_abs();
    let base = [
        (hue % 200) as u8 + 30,
        ((hue / 7) % 200) as u8 + 30,
        ((hue / 49) % 200) as u8 + 30,
    ];
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let t = ((x + y) * 255 / (width + height).max(1)) as u8;
            for channel in base {
                pixels.push(channel.saturating_add(t / 3));
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Writing into a Vec cannot fail for a well-formed image of the declared size.
        if let Ok(mut writer) = encoder.write_header() {
            let _ = writer.write_image_data(&pixels);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_mp4_is_a_video_and_text_is_not() {
        let sample = include_bytes!("../../assets/sample.mp4");
        assert_eq!(sniff(sample), Some(Container::Mp4));
        assert_eq!(sniff(b"hello, this is not a video at all"), None);
        assert_eq!(
            sniff(&[0x89, b'P', b'N', b'G', 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(sniff(&[]), None);
    }

    #[test]
    fn placeholder_is_a_png() {
        let png = placeholder_png(32, 24, 7);
        assert!(png.starts_with(&[0x89, b'P', b'N', b'G']));
    }
}

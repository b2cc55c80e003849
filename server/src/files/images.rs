//! Images: prove that an upload which claims to be an image decodes, record its size, make a
//! thumbnail, and write the copy other people download without the metadata cameras, phones
//! and editors put in (GPS position, device, time, XMP, comments).
//!
//! JPEG, PNG and WebP are re-encoded from their pixels, so nothing but the pixels survives
//! (a PNG's text chunks, a WebP's EXIF and XMP). A GIF is rewritten frame by frame instead,
//! its compressed image data copied as it is (an animation stays exactly as it was) with
//! only what showing it needs: the screen, the palettes, the timing and the loop count. Its
//! comments, XMP and other application blocks are left behind.
//!
//! All of it is CPU work on the blocking pool (see [`super::FileService`]), under decoding
//! limits so that a small file can't expand into gigabytes of pixels.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Cursor},
    path::{Path, PathBuf},
};

use image::{
    DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits,
    codecs::jpeg::JpegEncoder,
};

use app::uploads::FileKind;

/// Longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIZE: u32 = 400;
/// Largest image side accepted, in pixels.
const MAX_SIDE: u32 = 12_000;
/// Most pixels an image may have (40 megapixels: more than any phone camera).
const MAX_PIXELS: u64 = 40_000_000;
/// Most memory the decoded pixels may take.
const MAX_DECODE_BYTES: u64 = 256 * 1024 * 1024;
const JPEG_QUALITY: u8 = 88;
const THUMBNAIL_QUALITY: u8 = 80;

/// What became of an image upload.
#[derive(Debug)]
pub struct Processed {
    pub width: u32,
    pub height: u32,
    /// The metadata-free copy to store instead of the upload.
    pub cleaned: PathBuf,
    /// The thumbnail and its MIME type.
    pub thumbnail: Vec<u8>,
    pub thumbnail_type: &'static str,
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageProblem {
    #[error("it is not a valid image")]
    Undecodable,
    #[error(
        "the image is too large to process: at most {MAX_SIDE} pixels a side and 40 megapixels"
    )]
    TooLarge,
    #[error("the image could not be processed")]
    Failed(#[source] ImageError),
}

impl From<ImageError> for ImageProblem {
    fn from(error: ImageError) -> Self {
        match error {
            ImageError::Limits(_) => Self::TooLarge,
            ImageError::Decoding(_) | ImageError::Unsupported(_) => Self::Undecodable,
            ImageError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                Self::Undecodable
            }
            other => Self::Failed(other),
        }
    }
}

/// Decodes the image at `source` as `kind`, and writes its cleaned copy next to it.
///
/// # Errors
/// [`ImageProblem::Undecodable`] when the bytes are not a whole image of that kind.
pub fn process(source: &Path, kind: FileKind) -> Result<Processed, ImageProblem> {
    let format = match kind {
        FileKind::Jpeg => ImageFormat::Jpeg,
        FileKind::Png => ImageFormat::Png,
        FileKind::Gif => ImageFormat::Gif,
        FileKind::Webp => ImageFormat::WebP,
        _ => return Err(ImageProblem::Undecodable),
    };
    let file = File::open(source).map_err(|error| ImageProblem::Failed(error.into()))?;
    let mut reader = ImageReader::with_format(BufReader::new(file), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder()?;
    // The header gives the size: refuse what would decode into too much memory before a single
    // pixel is decoded (a few kilobytes of PNG can claim gigabytes).
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > MAX_PIXELS || decoder.total_bytes() > MAX_DECODE_BYTES
    {
        return Err(ImageProblem::TooLarge);
    }
    // A photo taken sideways is stored upright, since the tag that says so goes with the rest.
    let orientation = decoder.orientation()?;
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);

    let cleaned = cleaned_path(source);
    match format {
        ImageFormat::Gif => write_clean_gif(source, &cleaned)?,
        _ => write_clean(&image, format, &cleaned)?,
    }
    let (thumbnail, thumbnail_type) = thumbnail(&image)?;
    Ok(Processed {
        width: image.width(),
        height: image.height(),
        cleaned,
        thumbnail,
        thumbnail_type,
    })
}

/// Where the cleaned copy of the upload at `source` is written.
pub fn cleaned_path(source: &Path) -> PathBuf {
    source.with_extension("clean")
}

/// Re-encodes the pixels alone: whatever metadata the upload had is not carried over.
fn write_clean(image: &DynamicImage, format: ImageFormat, path: &Path) -> Result<(), ImageError> {
    let mut out = BufWriter::new(File::create(path)?);
    match format {
        ImageFormat::Jpeg => {
            image
                .to_rgb8()
                .write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))?;
        }
        // PNG and WebP (which the encoder writes lossless) keep transparency.
        _ => image.write_to(&mut out, format)?,
    }
    use std::io::Write;
    out.flush()?;
    Ok(())
}

/// Copies the GIF at `source` to `path` with its frames and nothing else. The image data is
/// not decoded again: each frame's compressed bytes are carried over as they are.
fn write_clean_gif(source: &Path, path: &Path) -> Result<(), ImageProblem> {
    let undecodable = |_| ImageProblem::Undecodable;
    let mut options = gif::DecodeOptions::new();
    options.skip_frame_decoding(true);
    options.set_memory_limit(gif::MemoryLimit::Bytes(
        std::num::NonZeroU64::new(MAX_DECODE_BYTES).unwrap_or(std::num::NonZeroU64::MIN),
    ));
    let file = File::open(source).map_err(|error| ImageProblem::Failed(error.into()))?;
    let mut decoder = options
        .read_info(BufReader::new(file))
        .map_err(undecodable)?;
    let out =
        BufWriter::new(File::create(path).map_err(|error| ImageProblem::Failed(error.into()))?);
    let palette = decoder.global_palette().unwrap_or_default().to_vec();
    let mut encoder = gif::Encoder::new(out, decoder.width(), decoder.height(), &palette)
        .map_err(encoding_failed)?;
    if decoder.repeat() != gif::Repeat::Finite(0) {
        encoder
            .set_repeat(decoder.repeat())
            .map_err(encoding_failed)?;
    }
    while let Some(frame) = decoder.read_next_frame().map_err(undecodable)? {
        encoder
            .write_lzw_pre_encoded_frame(frame)
            .map_err(encoding_failed)?;
    }
    let mut out = encoder.into_inner().map_err(encoding_failed)?;
    use std::io::Write;
    out.flush()
        .map_err(|error| ImageProblem::Failed(error.into()))
}

fn encoding_failed(error: gif::EncodingError) -> ImageProblem {
    ImageProblem::Failed(ImageError::IoError(std::io::Error::other(error)))
}

/// A small copy: JPEG, or PNG when the image has transparency.
fn thumbnail(image: &DynamicImage) -> Result<(Vec<u8>, &'static str), ImageError> {
    let small = image.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE);
    let mut bytes = Cursor::new(Vec::new());
    if small.color().has_alpha() {
        small.write_to(&mut bytes, ImageFormat::Png)?;
        Ok((bytes.into_inner(), "image/png"))
    } else {
        small
            .to_rgb8()
            .write_with_encoder(JpegEncoder::new_with_quality(&mut bytes, THUMBNAIL_QUALITY))?;
        Ok((bytes.into_inner(), "image/jpeg"))
    }
}

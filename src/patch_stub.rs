//! TEMPORARY stub until src/patch.rs lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatchFormat {
    GitFormatPatch,
    HgExport,
    PlainDiff,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatchDate {
    pub seconds: i64,
    pub offset_minutes: i32,
}
impl PatchDate {
    pub fn to_git(&self) -> String {
        format!("{} +0000", self.seconds)
    }
}
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_files: usize,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPatch {
    pub format: PatchFormat,
    pub author: Option<String>,
    pub date: Option<PatchDate>,
    pub message: Option<String>,
    pub diff: String,
    pub files: Vec<String>,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the patch is empty")]
    Empty,
}
pub fn parse(content: &[u8], _limits: &Limits) -> Result<ParsedPatch, PatchError> {
    let s = String::from_utf8_lossy(content).into_owned();
    if s.trim().is_empty() {
        return Err(PatchError::Empty);
    }
    Ok(ParsedPatch {
        format: PatchFormat::PlainDiff,
        author: None,
        date: None,
        message: None,
        diff: s,
        files: vec![],
    })
}
pub fn with_trailer(message: &str, key: &str, value: &str) -> String {
    format!("{}\n\n{key}: {value}\n", message.trim_end())
}

//! The report's fixed words, Chinese first, then English.

/// The title.
pub const TITLE: &str = "执法记录仪电子数据监管链报告";
/// The title in English.
pub const TITLE_EN: &str = "Chain-of-custody report: body-worn camera evidence";
/// Cover labels.
pub const SCOPE: &str = "范围 Scope";
/// The export id.
pub const EXPORT: &str = "导出编号 Export";
/// Why it was exported.
pub const REASON: &str = "导出原因 Reason";
/// Who made the report.
pub const MADE_BY: &str = "导出人 Made by";
/// When.
pub const MADE_AT: &str = "生成时间 Made at (UTC)";
/// The ledger key.
pub const LEDGER_KEY: &str = "账本密钥 Ledger key";
/// Its fingerprint.
pub const FINGERPRINT: &str = "密钥指纹 Key fingerprint";
/// The checkpoint.
pub const CHECKPOINT: &str = "账本检查点 Ledger checkpoint";
/// The checkpoint in the footer.
pub const CHECKPOINT_SHORT: &str = "检查点 checkpoint";
/// Approvals heading.
pub const APPROVALS: &str = "调阅审批 Approvals";
/// No approvals.
pub const NO_APPROVALS: &str =
    "无：导出人的角色无需审批。 None: the exporter's role needs no approval.";
/// The list's heading.
pub const LIST: &str = "电子数据提取固定清单 List of electronic data extracted and fixed";
/// Coverage heading.
pub const COVERAGE: &str = "覆盖性检查 Coverage of each recorder's footage";
/// What the coverage check covers.
pub const COVERAGE_NOTE: &str = "依据本报告所列文件的清单：记录仪文件编号的缺失（入库前在记录仪上被删除）、时钟跳变、逾期入库；末列为账本中的 coverage.gap 条目及主管的中断说明（coverage.explained）。 \
From the manifests of the files listed here: missing file numbers (deleted on the recorder before docking), clock jumps, late ingests. \
The last column is the finding's coverage.gap entry in the ledger and the supervisor's explanation (coverage.explained), if given.";
/// No findings.
pub const NO_COVERAGE: &str = "未发现问题。 No finding.";
/// Coverage columns.
pub const COVERAGE_COLUMNS: [&str; 5] = [
    "记录仪 Recorder",
    "民警 Officer",
    "文件 File (segment)",
    "发现 Finding",
    "账本记录与中断说明 On the ledger; explanation",
];
/// Timeline heading.
pub const TIMELINE: &str = "监管链记录 Custody timeline";
/// Access heading.
pub const ACCESS: &str = "调阅与下载 Views and downloads";
/// No access.
pub const NO_ACCESS: &str = "无调阅或下载记录。 No view or download was recorded.";
/// QR caption for the checkpoint.
pub const CHECKPOINT_QR: &str = "检查点二维码 Checkpoint QR";

/// How to verify, in Chinese.
pub const HOW_TO_VERIFY_ZH: &str = "如何核验：本报告是导出包的一部分，其 SHA-256 记录在账本的 export.created 条目中。\
请按导出包内 VERIFY.zh-CN.txt（英文版 VERIFY.txt）的步骤，用 custos verify bundle --ledger-key 账本公钥 \
或标准工具（sha256sum、openssl）核验：账本签名的检查点、每条记录的包含证明、每个文件的 SHA-256 以及本报告本身。\
本报告每页页脚所列检查点即本报告所依据的账本状态。";
/// How to verify, in English.
pub const HOW_TO_VERIFY_EN: &str = "How to verify: this report is part of the export bundle and its SHA-256 is recorded \
in the ledger's export.created entry. Follow VERIFY.txt (Chinese: VERIFY.zh-CN.txt) in the bundle: \
custos verify bundle --ledger-key LEDGER.pub, or standard tools (sha256sum, openssl), check the checkpoint the ledger \
signed, every entry's inclusion proof, every file's SHA-256, and this report itself. The checkpoint in every page's \
footer is the ledger state this report was made from.";
/// For a report made outside an export.
pub const STANDALONE_ZH: &str = "本报告不属于导出包：它列出账本在页脚检查点时的监管链记录。\
可用账本的 /v1/proof/inclusion 接口核验每条记录的叶哈希。";
/// For a report made outside an export, in English.
pub const STANDALONE_EN: &str = "This report is not part of an export bundle: it lists the custody records as of the \
checkpoint in the footer. Each entry's leaf hash can be checked against the ledger's /v1/proof/inclusion.";

/// List columns.
pub const LIST_COLUMNS: [&str; 8] = [
    "序号\nNo.",
    "文件 File\n包内路径 / 原始文件名\nbundle path / original name",
    "记录仪 Recorder\n民警 Officer",
    "录制时间 Recorded (UTC)\n起 / 止 / 时间来源\nstart / end / source",
    "时长 Duration\n大小 Size",
    "格式 Format\n封装 / 编码\ncontainer / codecs",
    "完整性校验值 Integrity hash",
    "标记 Flags",
];
/// Timeline columns.
pub const TIMELINE_COLUMNS: [&str; 6] = [
    "序号\nseq",
    "时间 Time (UTC)",
    "操作者 Actor",
    "操作 Action",
    "摘要 Details",
    "叶哈希 Leaf hash",
];
/// Access columns.
pub const ACCESS_COLUMNS: [&str; 5] = [
    "序号\nseq",
    "时间 Time (UTC)",
    "调阅人 Who",
    "方式 What",
    "审批 Approval",
];
/// Approval columns.
pub const APPROVAL_COLUMNS: [&str; 6] = [
    "申请 Request",
    "申请人 Requester",
    "事由 Reason",
    "范围 Covers",
    "审批人 Approved by",
    "有效期至 Valid until",
];

/// "第 N 页 / 共 M 页 · page N of M".
pub fn page_of(n: usize, m: usize) -> String {
    format!("第 {n} 页 / 共 {m} 页 · page {n} of {m}")
}

/// The Chinese name of a custody action.
pub fn action_zh(action: &str) -> &'static str {
    match action {
        "recorder.docked" => "记录仪接入",
        "recorder.undocked" => "记录仪拔出",
        "recorder.clock_set" => "校时",
        "segment.ingested" => "采集入库",
        "segment.verified" => "存储核验",
        "segment.wiped" => "记录仪擦除",
        "segment.viewed" => "调阅",
        "segment.downloaded" => "下载",
        "case.created" => "立案",
        "case.segment_linked" => "关联案件",
        "case.closed" => "结案",
        "access.requested" => "调阅申请",
        "access.approved" => "审批通过",
        "access.denied" => "审批驳回",
        "access.refused" => "拒绝访问",
        "export.created" => "导出",
        "hold.placed" => "保全",
        "hold.released" => "解除保全",
        "retention.changed" => "保存期限变更",
        "retention.deleted" => "到期删除",
        "audit.scrubbed" => "存储巡检",
        "coverage.gap" => "覆盖缺口",
        "coverage.explained" => "中断说明",
        "ledger.key_added" => "账本密钥启用",
        "ledger.key_retired" => "账本密钥停用",
        _ => "其他",
    }
}

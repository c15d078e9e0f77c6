//! `asu-builder.8`, generated from the command definition by clap_mangen
//! (name, synopsis, description, options, commands), with the sections an
//! administrator's man page needs after them: each operator command,
//! files, environment, signals, exit status, see also.

use super::Cli;
use clap::CommandFactory;
use std::io::Write;

const EXTRA: &str = r#".SH "OPERATOR COMMANDS"
They open the server's database (\fBdatabase_path\fR) directly, next to a running server: reads never wait, and each change is one short write transaction. Run them as the service user (\fBsudo -u asu-builder asu-builder jobs\fR), so files the database creates stay the server's. A \fIHASH\fR may be a unique prefix of at least 6 hex digits.
.TP
\fBjobs\fR [\fB--status\fR \fISTATUS\fR]... [\fB--limit\fR \fIN\fR]
A table of jobs, newest first: id, status, phase, attempts, when queued, hash prefix, version, target, profile. \fISTATUS\fR is pending, running, completed, failed or cancelled.
.TP
\fBjob\fR \fIHASH\fR
Everything about one request: the validated request, each of its jobs with its failure detail and the end of its output, the result with its expiry, and whether its store directory is there.
.TP
\fBretry\fR \fIHASH\fR
Drops a cached failure (or a cancelled job) and queues the stored request again. Refused while a build is queued or running, and for a request that was built.
.TP
\fBcancel\fR \fIHASH\fR
A queued build is cancelled; a running one is cancelled and its container killed through Podman. Clients then see the hash as unknown, so the next request builds afresh.
.TP
\fBpurge\fR \fB--failed\fR | \fB--expired\fR
\fB--failed\fR deletes failed and cancelled jobs at once, whatever \fBfailure_ttl_seconds\fR says. \fB--expired\fR deletes results and failures past their lifetime, and the store directories no live result uses (what the server's janitor does every 30 s).
.TP
\fBdoctor\fR
One line per check, OK or FAIL, each failure with its fix: configuration, database integrity and schema, Podman reachable, build network present, free space of the store, upstream reachable.
.SH FILES
.TP
\fI/etc/asu-builder/config.yaml\fR
The configuration: every key with its default and a comment.
.TP
\fI/var/lib/asu-builder/\fR
State: \fIbuilder.db\fR (SQLite: jobs, results, statistics, metadata cache) and \fIpublic/store/\fR (built images).
.TP
\fI/lib/systemd/system/asu-builder.service\fR
The systemd unit (under the installation prefix).
.SH ENVIRONMENT
.TP
\fBASU_\fIKEY\fR
Overrides configuration key \fIkey\fR (upper case; lists comma-separated).
.TP
\fBJOURNAL_STREAM\fR
Set by systemd when standard error goes to the journal: log lines then carry no timestamp of their own.
.SH SIGNALS
.TP
\fBSIGHUP\fR
Re-reads the configuration. log_level, the *_ttl_seconds keys, repository_allow_list, branches, max_pending_jobs and admin_token change at once; every change is logged, and changed keys that need a restart are named.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop accepting, finish requests, give running builds 30 s, requeue the rest, exit 0.
.SH "EXIT STATUS"
0 on success; 1 when a command failed (\fBdoctor\fR: a check failed); 2 for a usage or configuration error.
.SH "SEE ALSO"
\fBpodman\fR(1), \fBsystemctl\fR(1), \fBjournalctl\fR(1); the README in /usr/share/doc/asu-builder.
"#;

/// The whole page, roff.
pub fn render(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd)
        .section("8")
        .source(format!("asu-builder {}", env!("CARGO_PKG_VERSION")));
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    man.render_options_section(&mut buf)?;
    man.render_subcommands_section(&mut buf)?;
    buf.extend_from_slice(EXTRA.as_bytes());
    man.render_version_section(&mut buf)?;
    out.write_all(&buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_has_its_sections() {
        let mut out = Vec::new();
        super::render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH asu-builder 8"),
            "{}",
            &text[..200]
        );
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "SUBCOMMANDS",
            "\"OPERATOR COMMANDS\"",
            "FILES",
            "ENVIRONMENT",
            "SIGNALS",
            "\"EXIT STATUS\"",
            "\"SEE ALSO\"",
            "VERSION",
        ] {
            assert!(
                text.contains(&format!(".SH {section}")),
                "{section} missing"
            );
        }
    }
}

//! Shared helpers of the flock-rs examples: their command line (`--help`, and an
//! error for anything they do not know) and the LLM engine of the LLM examples.

use std::{ffi::OsString, str::FromStr, time::Duration};

use anyhow::Result;

/// One option an example accepts: a flag (`--fast`) or an option with a value
/// (`--seed N`, also written `--seed=N`).
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    name: &'static str,
    value: Option<&'static str>,
    help: &'static str,
}

impl Opt {
    /// A flag such as `--fast`.
    pub const fn flag(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            value: None,
            help,
        }
    }

    /// An option with a value, such as `--seed N` (`value_name` is the `N`).
    pub const fn value(name: &'static str, value_name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            value: Some(value_name),
            help,
        }
    }
}

/// The exit code of a command-line mistake (unknown option, missing or bad value),
/// as for most Unix tools.
pub const USAGE_ERROR: u8 = 2;

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    /// Run the example with these arguments.
    Run(Args),
    /// Print this help and exit successfully.
    Help(String),
}

/// A command-line mistake: the message, and the usage to print after it.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError {
    /// What was wrong, e.g. `invalid option '--fats'`.
    pub message: String,
    /// The usage text of the example.
    pub usage: String,
}

/// The example's parsed command line (options declared with [`Opt`]).
#[derive(Debug)]
pub struct Args {
    program: String,
    usage: String,
    opts: Vec<Opt>,
    given: Vec<(&'static str, Option<String>)>,
}

impl Args {
    /// The process's arguments, parsed against `opts`. `--help` (or `-h`) prints the
    /// usage and exits with 0; an unknown option, a stray argument or a missing value
    /// prints the error and the usage to stderr and exits with [`USAGE_ERROR`].
    pub fn from_env(about: &str, opts: &[Opt]) -> Self {
        let mut argv = std::env::args_os();
        let program = argv
            .next()
            .map(std::path::PathBuf::from)
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "example".to_owned());
        match Self::parse(&program, about, opts, argv) {
            Ok(Command::Run(args)) => args,
            Ok(Command::Help(usage)) => {
                print!("{usage}");
                std::process::exit(0)
            }
            Err(err) => usage_exit(&program, &err.message, &err.usage),
        }
    }

    /// Parses `args` (without the program name) against `opts`.
    ///
    /// # Errors
    /// [`UsageError`] for an unknown option, a stray argument, or a missing value.
    pub fn parse(
        program: &str,
        about: &str,
        opts: &[Opt],
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Result<Command, UsageError> {
        let usage = usage(program, about, opts);
        let error = |message: String| UsageError {
            message,
            usage: usage.clone(),
        };
        let mut parser = lexopt::Parser::from_args(args);
        let mut given = Vec::new();
        loop {
            let arg = match parser.next() {
                Ok(Some(arg)) => arg,
                Ok(None) => break,
                Err(err) => return Err(error(err.to_string())),
            };
            let name = match arg {
                lexopt::Arg::Short('h') | lexopt::Arg::Long("help") => {
                    return Ok(Command::Help(usage));
                }
                lexopt::Arg::Long(name) => format!("--{name}"),
                other => return Err(error(other.unexpected().to_string())),
            };
            let Some(opt) = opts.iter().find(|o| o.name == name) else {
                return Err(error(format!("invalid option '{name}'")));
            };
            let value = match opt.value {
                None => {
                    if let Some(value) = parser.optional_value() {
                        let value = value.to_string_lossy();
                        return Err(error(format!("{name} takes no value, got '{value}'")));
                    }
                    None
                }
                Some(_) => {
                    let value = parser.value().map_err(|e| error(e.to_string()))?;
                    Some(value.to_string_lossy().into_owned())
                }
            };
            given.push((opt.name, value));
        }
        Ok(Command::Run(Self {
            program: program.to_owned(),
            usage,
            opts: opts.to_vec(),
            given,
        }))
    }

    fn declared(&self, name: &str, with_value: bool) {
        assert!(
            self.opts
                .iter()
                .any(|o| o.name == name && o.value.is_some() == with_value),
            "the example asks for `{name}`, which its Opt list does not declare that way"
        );
    }

    /// Whether the flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.declared(name, false);
        self.given.iter().any(|(n, _)| *n == name)
    }

    /// The value of `name` (the last one given), parsed, or `default`. A value that
    /// does not parse is a command-line mistake: the example exits with
    /// [`USAGE_ERROR`], saying so.
    pub fn value<T>(&self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.try_value(name, default) {
            Ok(value) => value,
            Err(message) => usage_exit(&self.program, &message, &self.usage),
        }
    }

    /// As [`Args::value`], with the mistake returned instead of exiting.
    ///
    /// # Errors
    /// The message for a value that does not parse.
    pub fn try_value<T>(&self, name: &str, default: T) -> Result<T, String>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.declared(name, true);
        let given = self.given.iter().rev().find(|(n, _)| *n == name);
        match given.and_then(|(_, v)| v.as_deref()) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|err| format!("invalid value for {name}: '{raw}': {err}")),
        }
    }

    /// A duration given in milliseconds after `name`, or `default`.
    pub fn millis(&self, name: &str, default: Duration) -> Duration {
        let ms = self.value(name, u64::try_from(default.as_millis()).unwrap_or(u64::MAX));
        Duration::from_millis(ms)
    }
}

/// The usage text: the synopsis, what the example does, and its options.
fn usage(program: &str, about: &str, opts: &[Opt]) -> String {
    let mut rows: Vec<(String, &str)> = opts
        .iter()
        .map(|o| match o.value {
            Some(value) => (format!("{} {value}", o.name), o.help),
            None => (o.name.to_owned(), o.help),
        })
        .collect();
    rows.push(("-h, --help".to_owned(), "print this help and exit"));
    let width = rows.iter().map(|(left, _)| left.len()).max().unwrap_or(0);
    let mut text = format!(
        "usage: {program} [OPTIONS]\n\n{}\n\noptions:\n",
        about.trim()
    );
    for (left, help) in rows {
        text.push_str(&format!("  {left:<width$}  {help}\n"));
    }
    text
}

fn usage_exit(program: &str, message: &str, usage: &str) -> ! {
    eprint!("{program}: error: {message}\n\n{usage}");
    std::process::exit(i32::from(USAGE_ERROR))
}

/// The LLM engine of an example: the OpenAI-compatible endpoint the environment
/// configures (`OPENAI_API_KEY` / `OPENAI_BASE_URL`; model `FLOCK_MODEL`, else
/// `gpt-4o-mini`), or, with none configured, a local OpenAI-compatible server on
/// 127.0.0.1 whose replies `answer` computes from each request (said on stdout).
/// Keep the returned server until the flock is done: dropping it stops it.
///
/// # Errors
/// When the engine's configuration is invalid or no loopback port can be bound.
pub async fn llm_engine<Out, F>(
    builder: flock::llm::LlmEngineBuilder<Out>,
    local_model: &str,
    answer: F,
) -> Result<(
    flock::llm::LlmEngine<Out>,
    Option<flock::llm::mock::MockChatServer>,
)>
where
    Out: flock::FlockType + flock::llm::JsonSchema,
    F: Fn(&flock::llm::mock::ChatRequest) -> flock::llm::mock::MockReply + Send + Sync + 'static,
{
    let configured = ["OPENAI_API_KEY", "OPENAI_BASE_URL"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()));
    if configured {
        let builder = if std::env::var("FLOCK_MODEL").is_err() {
            builder.model("gpt-4o-mini")
        } else {
            builder
        };
        return Ok((builder.build()?, None));
    }
    let server = flock::llm::mock::MockChatServer::start(answer).await?;
    println!(
        "No OPENAI_API_KEY or OPENAI_BASE_URL configured: started a local OpenAI-compatible \
         server on {} that answers deterministically from each request.",
        server.base_url()
    );
    let engine = builder
        .ignore_env()
        .base_url(server.base_url())
        .model(local_model)
        .build()?;
    Ok((engine, Some(server)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTS: [Opt; 2] = [
        Opt::flag("--fast", "run faster"),
        Opt::value("--seed", "N", "the random seed"),
    ];

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        Args::parse("demo", "A demo.", &OPTS, args)
    }

    fn run(args: &[&str]) -> Args {
        match parse(args) {
            Ok(Command::Run(args)) => args,
            other => panic!("{args:?} should run, got {other:?}"),
        }
    }

    fn mistake(args: &[&str]) -> String {
        match parse(args) {
            Err(err) => err.message,
            other => panic!("{args:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn declared_options_parse_in_both_spellings() {
        let args = run(&["--fast", "--seed", "3"]);
        assert!(args.flag("--fast"));
        assert_eq!(args.value("--seed", 7_u64), 3);
        let args = run(&["--seed=4"]);
        assert!(!args.flag("--fast"));
        assert_eq!(args.value("--seed", 7_u64), 4);
        assert_eq!(run(&[]).value("--seed", 7_u64), 7);
    }

    #[test]
    fn help_is_the_usage_with_every_option() {
        for flag in ["--help", "-h"] {
            let Ok(Command::Help(usage)) = parse(&["--fast", flag, "--unknown"]) else {
                panic!("{flag} should ask for help");
            };
            assert_eq!(
                usage,
                "usage: demo [OPTIONS]\n\nA demo.\n\noptions:\n  --fast      run faster\n  --seed N    the random seed\n  -h, --help  print this help and exit\n"
            );
        }
    }

    #[test]
    fn anything_unknown_is_a_usage_error() {
        assert_eq!(mistake(&["--fats"]), "invalid option '--fats'");
        assert_eq!(mistake(&["-x"]), "invalid option '-x'");
        assert_eq!(mistake(&["fast"]), "unexpected argument \"fast\"");
        assert_eq!(mistake(&["--seed"]), "missing argument for option '--seed'");
        assert_eq!(mistake(&["--fast=yes"]), "--fast takes no value, got 'yes'");
        assert_eq!(
            run(&["--seed", "x"]).try_value("--seed", 7_u64),
            Err("invalid value for --seed: 'x': invalid digit found in string".to_owned())
        );
    }
}

//! The report: one row a figure, next to its target, printed as Markdown.

pub(crate) struct Row {
    figure: String,
    measured: String,
    target: &'static str,
    pub(crate) met: Option<bool>,
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) rows: Vec<Row>,
}

impl Report {
    pub(crate) fn add(
        &mut self,
        figure: impl Into<String>,
        measured: String,
        target: &'static str,
        met: Option<bool>,
    ) {
        let row = Row {
            figure: figure.into(),
            measured,
            target,
            met,
        };
        println!(
            "  {:<44} {}  [target: {}{}]",
            row.figure,
            row.measured,
            row.target,
            verdict(row.met)
        );
        self.rows.push(row);
    }

    pub(crate) fn print_markdown(&self) {
        println!("\n| figure | measured | target | met |\n|---|---|---|---|");
        for row in &self.rows {
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            println!(
                "| {} | {} | {} | {met} |",
                row.figure, row.measured, row.target
            );
        }
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => " — met",
        Some(false) => " — MISSED",
        None => "",
    }
}

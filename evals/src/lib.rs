/*!
The eval harness: task suites graded on the final database state and answers,
runners with record/replay, A/B experiments with paired statistics, and the one
report that gathers every quality number.

Filled by the "eval harness" issue; for now this crate holds only this doc.
*/

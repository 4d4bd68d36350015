"""One command line for the library: ``python -m mmr build | evaluate | benchmark | info``."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Annotated

import typer

from mmr.collections import DEFAULT_COLLECTIONS, SETTING_OF_COLLECTION, benchmark_of, collections
from mmr.config import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="mmr: compare multimodal retrievers.")

RetrieverOpt = Annotated[list[str] | None, typer.Option("--retriever", "-r", help="repeat to pick several")]
CollectionOpt = Annotated[
    list[str] | None, typer.Option("--collection", "-c", help=f"e.g. {list(DEFAULT_COLLECTIONS)}")
]


def _setup_logging(verbose: bool) -> None:
    # Our own progress messages only; third-party libraries stay at WARNING.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("mmr").setLevel(logging.INFO if verbose else logging.WARNING)


@app.command()
def build(
    retriever: RetrieverOpt = None,
    collection: CollectionOpt = None,
    force: Annotated[bool, typer.Option(help="rebuild even what exists")] = False,
    verbose: bool = True,
) -> None:
    """Build corpora, benchmark splits and the indexes of untrained retrievers into index_store/."""
    from mmr.build import build_corpora, build_indexes
    from mmr.retrievers import Resources

    _setup_logging(verbose)
    settings = Settings()
    summary = build_corpora(settings, force=force)
    build_indexes(settings, Resources(settings), retriever, collection, force=force, summary=summary)
    for step in summary.steps:
        typer.echo(f"built    {step}")
    for step in summary.skipped:
        typer.echo(f"present  {step}")
    for warning in summary.warnings:
        typer.secho(f"warning  {warning}", fg="yellow")


@app.command()
def train(
    name: Annotated[str, typer.Argument(help="a trained retriever, e.g. marvel")],
    seed: Annotated[int, typer.Option(help="seeds python, numpy and torch")] = 0,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=VALUE: override one training setting (repeatable; for trainers that declare their settings)",
        ),
    ] = None,
    dev_only: Annotated[
        bool, typer.Option(help="train and print the dev scores, but keep the served model and indexes")
    ] = False,
) -> None:
    """Train one method on the train split (model chosen on dev), then build its indexes."""
    import json

    from mmr.retrievers import RETRIEVERS, Resources, retriever_spec, served_hyperparameters, train_function
    from mmr.training.locks import LockHeldError
    from mmr.training.overrides import OverrideError, apply_overrides
    from mmr.training.pipeline import train_release

    _setup_logging(True)
    spec = retriever_spec(name)
    if not spec.trainer:
        trainable = sorted(n for n, s in RETRIEVERS.items() if s.trainer)
        raise typer.BadParameter(f"{name!r} has nothing to train. Trainable: {trainable}")
    options = {}
    if set_ or dev_only:
        served = served_hyperparameters(spec)
        if served is None:
            tunable = sorted(n for n, s in RETRIEVERS.items() if s.hyperparameters)
            raise typer.BadParameter(f"{name!r} takes no --set / --dev-only. Those that do: {tunable}")
        try:
            options = {"hp": apply_overrides(served, set_ or []), "save": not dev_only}
        except OverrideError as err:
            raise typer.BadParameter(str(err)) from err
    settings = Settings()
    resources = Resources(settings)
    if dev_only:
        manifest = train_function(spec)(settings, resources, seed, **options)
        typer.echo(f"trained {name}: dev MRR@10 {manifest.dev_mrr_at_10:.3f} in {manifest.train_seconds:.0f}s")
        typer.echo("dev only: nothing saved. Dev history:")
        for entry in manifest.history:
            typer.echo(json.dumps(entry))
        return
    try:
        release = train_release(settings, resources, name, seed, options)
    except LockHeldError as err:
        typer.secho(f"{name} is being trained by another process now ({err}); try again when it is done", fg="red")
        raise typer.Exit(1) from err
    manifest = release.manifest
    typer.echo(
        f"trained {name}: dev MRR@10 {manifest.dev_mrr_at_10:.3f} in {manifest.train_seconds:.0f}s "
        f"({release.seconds:.0f}s with its indexes); serving release {release.folder.name}"
    )


@app.command("train-all")
def train_all(
    retriever: RetrieverOpt = None,
    force: Annotated[bool, typer.Option(help="retrain those that have a model too")] = False,
    seed: Annotated[int, typer.Option(help="seeds python, numpy and torch")] = 0,
) -> None:
    """Train every method without a model (or --force: all), in dependency order; print where the time went."""
    from mmr.training.locks import LockHeldError
    from mmr.training.pipeline import run_pipeline

    _setup_logging(True)
    settings = Settings()
    start = time.monotonic()
    try:
        status = run_pipeline(settings, retriever, force=force, seed=seed)
    except LockHeldError as err:
        typer.secho(f"another trainer runs on {settings.index_store} ({err}); see `python -m mmr status`", fg="red")
        raise typer.Exit(1) from err
    typer.echo(timing_table(status, time.monotonic() - start))
    if any(method.state != "done" for method in status.methods.values()):
        raise typer.Exit(1)


@app.command()
def status() -> None:
    """What the background trainer is doing (or did last): each method's state, stage and progress."""
    from mmr.training.status import read_status

    settings = Settings()
    current = read_status(settings)
    if current is None:
        typer.echo(f"no trainer has run on {settings.index_store}")
        return
    typer.echo(f"trainer pid {current.pid}: {'running' if current.alive else 'not running'}")
    for name, method in current.methods.items():
        progress = f" {method.done:.0f}/{method.total:.0f}" if method.total else ""
        took = f" {method.seconds:.0f}s" if method.seconds else ""
        line = f"  {name:<18} {method.state:<11} {method.stage}{progress}{took}"
        typer.echo(line + (f"  {method.error}  (retry: {method.command})" if method.error else ""))


@app.command()
def sessions(
    give: Annotated[
        tuple[str, str] | None, typer.Option("--give", help="SESSION RATER: make RATER the owner (and a member)")
    ] = None,
) -> None:
    """Judging sessions with their owners, members and join codes (the server's view: for whoever runs it)."""
    from mmr.store import RatingStore

    store = RatingStore(Settings().db_path).judgments
    if give:
        name, rater = give
        info = store.session(name)
        if info is None:
            typer.echo(f"no session named {name!r}", err=True)
            raise typer.Exit(1)
        store.set_owner(info.id, rater)
        typer.echo(f"{rater} owns {name!r} now")
    for info in store.sessions():
        members = store.members(info.id)
        typer.echo(
            f"{info.name}: owner {info.owner or '(none: made before owners)'}, {len(members)} members, "
            f"{store.query_count(info.id)} queries, join code {info.join_code}"
        )


def timing_table(status, wall_seconds: float) -> str:
    """Per method: what happened, how long it took, its dev score (what the README's timing table quotes)."""
    lines = ["", "| method | result | seconds | dev MRR@10 (stamps) |", "|---|---|---|---|"]
    for name, method in status.methods.items():
        dev = f"{method.dev_mrr_at_10:.3f}" if method.dev_mrr_at_10 is not None else ""
        result = method.state if not method.error else f"{method.state}: {method.error}"
        lines.append(f"| {name} | {result} | {method.seconds or 0:.0f} | {dev} |")
    lines.append(f"| all (openclipart render included) | | {wall_seconds:.0f} | |")
    return "\n".join(lines)


@app.command()
def evaluate(
    retriever: RetrieverOpt = None,
    collection: CollectionOpt = None,
    split: Annotated[str, typer.Option(help="train | dev | test")] = "test",
    out: Annotated[Path | None, typer.Option(help="also write the tables (markdown) here")] = None,
    compare: Annotated[bool, typer.Option(help="paired t-test between retrievers (ranx compare)")] = True,
) -> None:
    """R@1/5/10, MRR@10, nDCG@10 (95% bootstrap CI) per retriever on a benchmark split; an imported paper's
    corpus is scored with that paper's metrics."""
    from mmr.service import SearchService

    _setup_logging(False)
    settings = Settings()
    names = collection or list(DEFAULT_COLLECTIONS)
    service = SearchService.load(settings, retriever, names)
    sections = []
    for name in names:
        benchmark = benchmark_of(settings, name)
        if benchmark is None:
            typer.secho(f"skipped {name}: it has no benchmark queries and qrels", fg="yellow")
            continue
        sections.append(_collection_section(service, name, benchmark, split, compare))
        for (missing, coll), reason in service.load_errors.items():
            if coll == name:
                typer.secho(f"skipped {missing} on {coll}: {reason}", fg="yellow")
    report = "\n\n".join(sections)
    typer.echo(report)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report + "\n")


def _collection_section(service, name: str, benchmark, split: str, compare: bool) -> str:
    """One collection's table (its benchmark's metrics), paired t-test and, for LSR, its sparsity report."""
    from mmr.corpus.splits import SPLITS_VERSION
    from mmr.evaluation import (
        METRICS,
        image_query_from,
        make_run,
        markdown_table,
        paired_comparison,
        score_run,
        text_query,
    )

    bench = benchmark.load(split)
    title = f"### `{name}` collection, {benchmark.setting} setting, {split} split ({SPLITS_VERSION})"
    if not bench.qrels:
        return f"{title}\n\nNo {split} queries: import the corpus with `--split {split}` to score this split."
    metrics = benchmark.metrics or METRICS
    image_queries = benchmark.query_modality == "image"
    to_query = image_query_from(benchmark.queries_folder) if image_queries else text_query
    runs, rows = {}, []
    for retriever_name in service.available(name):
        retriever = service.retrievers[(retriever_name, name)]
        progress = f"{retriever_name} on {name}"
        runs[retriever_name] = make_run(retriever, bench.queries, progress=progress, to_query=to_query)
        rows.append(score_run(retriever_name, bench.qrels, runs[retriever_name], service.collections[name], metrics))
    section = f"{title}\n\n{markdown_table(rows, metrics=metrics)}"
    if compare and len(runs) > 1:
        metric = "mrr@10" if "mrr@10" in metrics else metrics[0]
        label = "MRR@10" if metric == "mrr@10" else metric
        section += f"\n\nPaired t-test on {label} (ranx compare; letters mark significantly better, p < 0.05):\n\n"
        section += f"```\n{paired_comparison(bench.qrels, runs, metric)}\n```"
    if ("lsr", name) in service.retrievers and not image_queries:
        sparse = _sparse_section(service.retrievers[("lsr", name)], service.collections[name], bench, rows)
        section += "\n\n" + sparse
    return section


def _sparse_section(lsr, corpus, bench, rows) -> str:
    """Sparsity, postings and MRR@10 kept from the teacher (whose row is in ``rows`` when it was evaluated)."""
    from mmr.methods.lsr.report import report_markdown, sparse_report

    teacher = lsr.model.config.teacher
    mrr = {row.retriever: row.means.get("mrr@10") for row in rows}
    report = sparse_report(lsr, corpus, bench.queries)
    return "Sparse retriever on the same queries:\n\n" + report_markdown(
        report, mrr.get("lsr"), teacher, mrr.get(teacher)
    )


@app.command()
def benchmark(
    collection: Annotated[str, typer.Option(help="collection to time queries on")] = "stamps",
    queries: Annotated[int, typer.Option(help="queries per retriever and modality")] = 50,
    out: Annotated[Path | None, typer.Option(help="also write the report (markdown) here")] = None,
) -> None:
    """Index-building throughput (texts/s, images/s) and query latency p50/p95 per retriever."""
    from mmr.benchmark import markdown_report, measure_encoding, measure_latency
    from mmr.corpus.splits import load_benchmark
    from mmr.service import SearchService

    _setup_logging(False)
    settings = Settings()
    service = SearchService.load(
        settings, collection_names=["mixed", collection] if collection != "mixed" else ["mixed"]
    )
    bench = load_benchmark(settings.benchmark_dir, SETTING_OF_COLLECTION[collection], "dev")
    texts = list(bench.queries.values())[:queries]
    images = [d.image_path for d in service.collections[collection].documents if d.modality == "image"][:queries]
    throughput = measure_encoding(service, service.collections["mixed"])
    latency = measure_latency(service, collection, texts, images)
    report = markdown_report(throughput, latency, collection)
    typer.echo(report)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report + "\n")


@app.command("add-collection")
def add_collection_command(
    name: Annotated[str, typer.Argument(help="name shown in the app")],
    corpus: Annotated[Path, typer.Argument(help="JSONL in the documented corpus format (README)")],
) -> None:
    """Register your own corpus as a collection, then build its indexes."""
    from mmr.build import build_indexes
    from mmr.collections import add_collection
    from mmr.retrievers import Resources

    _setup_logging(True)
    settings = Settings()
    added = add_collection(settings, name, corpus)
    typer.echo(f"registered {name}: {len(added)} documents")
    summary = build_indexes(settings, Resources(settings), collection_names=[name])
    for step in summary.steps:
        typer.echo(f"built    {step}")


@app.command("import-corpus")
def import_corpus_command(
    format_name: Annotated[str, typer.Argument(metavar="FORMAT", help="webqa | clueweb22-mm | mscoco | flickr30k")],
    source: Annotated[
        Path, typer.Argument(help="the corpus as published: WebQA's or ClueWeb22-MM's folder, a Karpathy JSON file")
    ],
    name: Annotated[str, typer.Argument(help="the collection's name (mscoco and flickr30k add NAME-captions)")],
    images_root: Annotated[
        Path | None, typer.Option(help="where the image files are (Karpathy JSON: default, its folder)")
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="splits to import (repeatable; default: the papers')")
    ] = None,
    retriever: RetrieverOpt = None,
) -> None:
    """Convert a paper's public corpus into collections with its queries and qrels, then build their indexes;
    `mmr evaluate -c NAME` then reports the paper's metrics."""
    from mmr.build import build_indexes
    from mmr.corpus.papers.importer import import_corpus
    from mmr.retrievers import Resources

    _setup_logging(True)
    settings = Settings()
    imported = import_corpus(settings, format_name, source, name, images_root, tuple(split or ()))
    for collection in imported:
        typer.echo(f"imported {collection.summary()}")
    names = [collection.name for collection in imported]
    # forced: an index built from an earlier import of NAME is stale now, and would otherwise be kept
    summary = build_indexes(settings, Resources(settings), retriever, collection_names=names, force=True)
    for step in summary.steps:
        typer.echo(f"built    {step}")


@app.command()
def info() -> None:
    """What is built, where, and what is missing."""
    from mmr.retrievers import RETRIEVERS
    from mmr.service import index_folder

    settings = Settings()
    typer.echo(f"index_store: {settings.index_store}\nratings db:  {settings.db_path}")
    for name, spec in RETRIEVERS.items():
        if unmet := spec.unmet_requirement():
            typer.echo(f"  -       {name:<18} {'':<8} {spec.label}: not configured: {unmet}")
            continue
        for collection in collections(settings):
            present = (index_folder(settings, name, collection) / "params.json").exists()
            typer.echo(f"  {'ok     ' if present else 'missing'} {name:<18} {collection:<8} {spec.label}")
    typer.echo(trained_models_table(settings))


def trained_models_table(settings: Settings) -> str:
    """One row per trained model, from its manifest: what the README's training table quotes."""
    from mmr.retrievers import RETRIEVERS
    from mmr.retrievers.overview import overview

    lines = [
        "",
        "| model | dev MRR@10 (stamps) | train seconds | data | seed | date |",
        "|---|---|---|---|---|---|",
    ]
    for entry in overview(settings, [name for name, spec in RETRIEVERS.items() if spec.trainer]):
        name, m = entry.name, entry.manifest
        if m is None:
            lines.append(f"| {name} | not trained (`python -m mmr train {name}`) | | | | |")
            continue
        lines.append(
            f"| {name} | {m.dev_mrr_at_10:.3f} | {m.train_seconds:.0f} | {m.data_fingerprint} | {m.seed} | {m.date} |"
        )
    return "\n".join(lines)


def main() -> None:
    app()

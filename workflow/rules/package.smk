report: "../report/workflow.rst"


rule package_entry:
    input:
        raw=lambda w: R(f"raw/{id_of(w)}.jpg"),
        meta=lambda w: R(f"raw/{id_of(w)}.json"),
        annotation=lambda w: R(f"annotations/{id_of(w)}.json"),
        training=R("training/{name}.png"),
        model=rules.train.output,
        volume=R("volumes/{name}.tif"),
        metrics=R("metrics/{name}.json"),
        media=rules.media.output,
    output:
        [
            (
                report(
                    R(f"microlibDataset/{{name}}/{{name}}{suffix}"),
                    caption="../report/preview.rst",
                    category="2. Entries",
                    labels={"entry": "{name}"},
                )
                if suffix == "_preview.png"
                else R(f"microlibDataset/{{name}}/{{name}}{suffix}")
            )
            for suffix in ENTRY_SUFFIXES
        ],
    log:
        log("package/{name}"),
    benchmark:
        bench("package/{name}")
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        model_dir=lambda w: R(f"models/{w.name}"),
        media_dir=lambda w: R(f"media/{w.name}"),
        outdir=lambda w: R(f"microlibDataset/{w.name}"),
    shell:
        "microlib package entry --name {wildcards.name} --raw-image {input.raw}"
        " --raw-meta {input.meta} --annotation {input.annotation}"
        " --training {input.training} --model-dir {params.model_dir}"
        " --volume {input.volume} --metrics {input.metrics}"
        " --media-dir {params.media_dir} --out-dir {params.outdir} > {log} 2>&1"


ZIP = bool(stage("package").get("zip", True))


rule package:
    input:
        entries=dataset_inputs,
        families=family_dataset_inputs,
        selection=R("annotations/selection.json"),
        index=R("raw/index.json"),
    output:
        anns=R("microlibDataset/data_anns.json"),
        excluded=R("microlibDataset/excluded.json"),
        about=multiext(
            R("microlibDataset/"), "README", "CREDITS", "SHA256SUMS", "index.html"
        ),
        archive=R("microlibDataset.zip") if ZIP else [],
        archive_sums=R("SHA256SUMS") if ZIP else [],
        summary=report(
            R("report/summary.svg"),
            caption="../report/summary.rst",
            category="1. Dataset summary",
        ),
        excluded_table=report(
            R("report/excluded.html"),
            caption="../report/excluded.rst",
            category="1. Dataset summary",
        ),
    log:
        log("package/dataset"),
    benchmark:
        bench("package/dataset")
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        dataset_dir=lambda w, output: os.path.dirname(output.anns),
        names=lambda w: " ".join(packaged_names()),
        families=families_flag,
        archive=f"--zip {R('microlibDataset.zip')}" if ZIP else "--no-zip",
        report_dir=lambda w, output: os.path.dirname(output.summary),
    shell:
        "microlib package dataset --selection {input.selection} --index {input.index}"
        " --dataset-dir {params.dataset_dir} {params.archive}"
        " --report-dir {params.report_dir} {params.names} {params.families}"
        " > {log} 2>&1"


# `snakemake microstructure237` rebuilds that entry (and only what it needs)
for _name in NAMES:

    rule:
        name:
            _name
        default_target: False
        input:
            named_target(_name),

# Families (config `families:`): one AdaIN-conditioned generator per family, trained on its
# members' training images (the files the per-entry `train` rule reads, so only members the
# selection included), volumes generated at each requested code, feature size vs code, the
# code sweep, and the packaged folder microlibDataset/families/{family}/.

# A family trains on all its members at once, the longest job of a run: it starts first
# (priority, below the cheap stages that make the training images) so it does not leave one
# core busy while the rest wait on it.


rule train_family:
    input:
        family_members,
    output:
        gen=R("models/families/{family}/{family}_Gen.pt"),
        disc=R("models/families/{family}/{family}_Disc.pt"),
        params_json=R("models/families/{family}/{family}_params.json"),
        log_csv=R("models/families/{family}/train_log.csv"),
        checkpoint=R("models/families/{family}/checkpoint.pt"),
    log:
        log("train_family/{family}"),
    benchmark:
        bench("train_family/{family}")
    priority: 1
    conda:
        CONDA_ENV
    threads: threads_for("train")
    resources:
        mem_mb=16000,
        runtime=6 * 60,
    params:
        outdir=lambda w: R(f"models/families/{w.family}"),
        codes=family_member_codes,
        args=family_train_args,
    shell:
        "microlib train {input} --codes {params.codes} --out {params.outdir}"
        " --name {wildcards.family} --threads {threads} {params.args} > {log} 2>&1"


rule generate_family:
    input:
        gen=R("models/families/{family}/{family}_Gen.pt"),
        params_json=R("models/families/{family}/{family}_params.json"),
    output:
        R("volumes/families/{family}/{family}_code{code}.tif"),
    log:
        log("generate_family/{family}_code{code}"),
    benchmark:
        bench("generate_family/{family}_code{code}")
    conda:
        CONDA_ENV
    threads: threads_for("generate")
    resources:
        mem_mb=16000,
        runtime=30,
    params:
        model_dir=lambda w: R(f"models/families/{w.family}"),
        args=family_generate_args,
    shell:
        "microlib generate {params.model_dir} --name {wildcards.family}"
        " --code {wildcards.code} --out {output} --threads {threads} {params.args}"
        " > {log} 2>&1"


rule validate_family:
    input:
        volumes=family_volumes,
        members=family_members,
    output:
        R("metrics/families/{family}.json"),
    log:
        log("validate_family/{family}"),
    benchmark:
        bench("validate_family/{family}")
    conda:
        CONDA_ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        codes=family_member_codes,
    shell:
        "microlib family metrics --name {wildcards.family} --volumes {input.volumes}"
        " --members {input.members} --codes {params.codes} --out {output} > {log} 2>&1"


rule media_family:
    input:
        volumes=family_volumes,
        members=family_members,
    output:
        png=R("media/families/{family}/{family}_sweep.png"),
        gif=R("media/families/{family}/{family}_sweep.gif"),
    log:
        log("media_family/{family}"),
    benchmark:
        bench("media_family/{family}")
    conda:
        CONDA_ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        outdir=lambda w: R(f"media/families/{w.family}"),
        codes=family_member_codes,
    shell:
        "microlib family sweep --name {wildcards.family} --volumes {input.volumes}"
        " --members {input.members} --codes {params.codes} --out-dir {params.outdir}"
        " > {log} 2>&1"


rule package_family:
    input:
        model=rules.train_family.output,
        metrics=R("metrics/families/{family}.json"),
        media=rules.media_family.output,
        raw=family_member_meta,
    output:
        [
            R(f"microlibDataset/families/{{family}}/{{family}}{s}")
            for s in FAMILY_SUFFIXES
        ],
    log:
        log("package_family/{family}"),
    benchmark:
        bench("package_family/{family}")
    conda:
        CONDA_ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        model_dir=lambda w: R(f"models/families/{w.family}"),
        media_dir=lambda w: R(f"media/families/{w.family}"),
        outdir=lambda w: R(f"microlibDataset/families/{w.family}"),
        individual=lambda w: (
            "--individual" if FAMILIES[w.family]["individual"] else "--no-individual"
        ),
    shell:
        "microlib package family --name {wildcards.family} --model-dir {params.model_dir}"
        " --metrics {input.metrics} --media-dir {params.media_dir} --raw-meta {input.raw}"
        " {params.individual} --out-dir {params.outdir} > {log} 2>&1"


# `snakemake family_blobs` builds that family (and only what it needs)
for _fam in FAMILIES:

    rule:
        name:
            f"family_{_fam}"
        default_target: False
        input:
            family_target(_fam),

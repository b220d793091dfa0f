# The resume state lives in models/{name}/resume/ (not a declared output): Snakemake deletes
# declared outputs before a job (re)starts, and a preempted or killed training job must find
# its checkpoint when SLURM or Snakemake starts it again. --forcerun deletes the declared
# outputs, leaves no resume state behind, and so retrains from scratch.
rule train:
    input:
        R("training/{name}.png"),
    output:
        gen=R("models/{name}/{name}_Gen.pt"),
        disc=R("models/{name}/{name}_Disc.pt"),
        params_data=R("models/{name}/{name}_params.data"),
        params_json=R("models/{name}/{name}_params.json"),
        log_csv=R("models/{name}/train_log.csv"),
        checkpoint=R("models/{name}/checkpoint.pt"),
    log:
        log("train/{name}"),
    benchmark:
        bench("train/{name}")
    conda:
        CONDA_ENV
    threads: threads_for("train")
    resources:
        mem_mb=16000,
        runtime=6 * 60,
    params:
        outdir=lambda w: R(f"models/{w.name}"),
        args=cli_args(stage("train")),
    shell:
        "microlib train {input} --out {params.outdir} --name {wildcards.name}"
        " --threads {threads} {params.args} > {log} 2>&1"

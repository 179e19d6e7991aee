//! `oomguard explain` as a user runs it: files, stdin, gzip, wrapped and
//! prefixed logs, several events, bad inputs and exit codes.

use crate::util::{oomguard, TempDir};

#[test]
fn bundled_example_explains_the_runpod_error() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/runpod-oom.txt");
    let out = oomguard(&["explain", example, "--batch", "64"], None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("PyTorch · CUDA GPU 0 · phase: the forward pass"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("Reduce the batch from 64 to 54"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("256.00 MiB more than was free"),
        "{}",
        out.stdout
    );
}

const PT2: &str = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 1.95 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn gzip_files_and_gzip_stdin_are_read() {
    let dir = TempDir::new();
    let log = format!("step 1\nstep 2\n{PT2}\n");
    let path = dir.file("train.log.gz", &gzip(log.as_bytes()));
    for out in [
        oomguard(&["explain", "--json", &path], None),
        oomguard(&["explain", "--json"], Some(&gzip(log.as_bytes()))),
    ] {
        assert_eq!(out.code, 0, "{}", out.stderr);
        let json = out.json();
        assert_eq!(json["events"][0]["line"], 3);
        assert_eq!(json["events"][0]["memory"]["process_bytes"], 24245090386u64);
    }
}

#[test]
fn wrapped_coloured_crlf_prefixed_text_gives_the_same_figures() {
    // The PyTorch 2.x message as a terminal 80 columns wide shows it, in red,
    // with Windows line ends, behind a docker compose prefix on the first line.
    let wrapped: Vec<String> = PT2
        .as_bytes()
        .chunks(80)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let text = format!("trainer-1  | \x1b[31m{}\x1b[0m\r\n", wrapped.join("\r\n"));
    let out = oomguard(&["explain", "--json"], Some(text.as_bytes()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ev = &out.json()["events"][0];
    assert_eq!(ev["line"], 1);
    assert_eq!(ev["message"].as_str().unwrap(), PT2);
    assert_eq!(ev["memory"]["free_bytes"], 1138166333u64);
    assert_eq!(ev["memory"]["reserved_bytes"], 23697482056u64);
    assert_eq!(ev["causes"][0]["id"], "batch_too_large");
}

#[test]
fn ranks_printing_one_failure_count_once_and_later_failures_count_again() {
    let mut log = String::new();
    for rank in 0..4 {
        log.push_str(&format!(
            "[rank{rank}]: {}\n",
            PT2.replace("GPU 0", &format!("GPU {rank}"))
        ));
    }
    for step in 0..500 {
        log.push_str(&format!("step {step} loss 1.0\n"));
    }
    log.push_str("RuntimeError: CUDA error: out of memory\n");
    let out = oomguard(&["explain", "--json"], Some(log.as_bytes()));
    let json = out.json();
    let events = json["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{}", out.stdout);
    assert_eq!(events[0]["line"], 1);
    assert_eq!(events[1]["line"], 505);
    assert_eq!(
        events[1]["memory"]["requested_bytes"],
        serde_json::Value::Null
    );
}

#[test]
fn files_are_read_in_order_with_their_names() {
    let dir = TempDir::new();
    let a = dir.file("a.log", b"RuntimeError: CUDA error: out of memory\n");
    let b = dir.file("b.log", format!("x\n{PT2}\n").as_bytes());
    let out = oomguard(&["explain", "--json", &a, &b], None);
    let json = out.json();
    assert_eq!(json["events"][0]["source"], a.as_str());
    assert_eq!(json["events"][1]["source"], b.as_str());
    assert_eq!(json["events"][1]["line"], 2);
}

#[test]
fn bad_inputs_give_clear_errors_and_exit_codes() {
    let dir = TempDir::new();
    let missing = dir.0.join("nope.log").to_string_lossy().into_owned();
    let out = oomguard(&["explain", &missing], None);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("nope.log") && out.stderr.contains("No such file"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"));

    let d = dir.0.to_string_lossy().into_owned();
    let out = oomguard(&["explain", &d], None);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("is a directory"), "{}", out.stderr);

    // A missing file among good ones: the good ones are still explained.
    let good = dir.file("good.log", PT2.as_bytes());
    let out = oomguard(&["explain", "--json", &missing, &good], None);
    assert_eq!(out.code, 2);
    assert_eq!(out.json()["events"].as_array().unwrap().len(), 1);

    let out = oomguard(&["explain"], Some(b""));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no out-of-memory event"),
        "{}",
        out.stderr
    );

    let out = oomguard(&["explain", "--json"], Some(b""));
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["events"].as_array().unwrap().len(), 0);

    let out = oomguard(&["explain", "--batch", "0"], Some(b""));
    assert_eq!(out.code, 2);
}

#[test]
fn binary_data_and_a_huge_line_give_no_panic() {
    let mut noise = Vec::with_capacity(3 << 20);
    let mut x: u32 = 12345;
    for _ in 0..(3 << 20) {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        noise.push((x >> 16) as u8);
    }
    let out = oomguard(&["explain"], Some(&noise));
    assert_eq!(out.code, 1, "{}", out.stderr);

    // 100 MB on one line with an OOM message in the middle of it.
    let mut line = vec![b'x'; 50 << 20];
    line.extend_from_slice(b" RuntimeError: CUDA error: out of memory ");
    line.extend(std::iter::repeat_n(b'y', 50 << 20));
    line.push(b'\n');
    let out = oomguard(&["explain", "--json"], Some(&line));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["events"][0]["line"], 1);
}

#[test]
fn batch_flag_turns_figures_into_a_batch_that_fits() {
    let out = oomguard(
        &["explain", "--json", "--batch", "32"],
        Some(PT2.as_bytes()),
    );
    let ev = &out.json()["events"][0];
    assert_eq!(ev["fixes"][0]["id"], "reduce_batch");
    // need = 20.12 + 2.00 GiB, budget = 22.07 + 1.06 GiB: 32 x 23.13 / 22.12 x 0.85 = 28.4
    assert_eq!(ev["fixes"][0]["title"], "Reduce the batch from 32 to 28");
}

/// The fix ids and env of the first event of `text`.
fn fixes_of(text: &str) -> (Vec<String>, serde_json::Value) {
    let out = oomguard(&["explain", "--json"], Some(text.as_bytes()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ev = out.json()["events"][0].clone();
    let ids = ev["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    (ids, ev)
}

/// The fix of `event` with this id.
fn fix_by_id(event: &serde_json::Value, id: &str) -> serde_json::Value {
    event["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no fix {id} in {event}"))
        .clone()
}

#[test]
fn allocator_variable_is_spelled_as_the_version_reads_it() {
    // 1.10-2.0: max_split_size_mb, sized just above the 216 MiB request.
    let (_, ev) = fixes_of("RuntimeError: CUDA out of memory. Tried to allocate 216.00 MiB (GPU 0; 7.92 GiB total capacity; 5.17 GiB already allocated; 24.56 MiB free; 7.86 GiB reserved in total by PyTorch) If reserved memory is >> allocated memory try setting max_split_size_mb to avoid fragmentation.  See documentation for Memory Management and PYTORCH_CUDA_ALLOC_CONF");
    assert_eq!(ev["causes"][0]["id"], "fragmentation");
    let fix = fix_by_id(&ev, "allocator_config");
    assert_eq!(
        fix["env"]["PYTORCH_CUDA_ALLOC_CONF"],
        "max_split_size_mb:256"
    );
    // ROCm 2.x names its own variable in the hint.
    let (_, ev) = fixes_of("torch.OutOfMemoryError: HIP out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 63.98 GiB of which 1.00 GiB is free. Of the allocated memory 40.00 GiB is allocated by PyTorch, and 20.00 GiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try setting PYTORCH_HIP_ALLOC_CONF=expandable_segments:True to avoid fragmentation.");
    let fix = fix_by_id(&ev, "allocator_config");
    assert_eq!(
        fix["env"]["PYTORCH_HIP_ALLOC_CONF"],
        "expandable_segments:True"
    );
}

#[test]
fn framework_remedies_carry_values() {
    let (ids, _) = fixes_of("tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with shape[128,768] and type float on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc [Op:StridedSliceGrad]");
    assert!(ids.contains(&"tf_memory_growth".to_string()), "{ids:?}");
    let (ids, _) = fixes_of("jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 17179869184 bytes.");
    assert!(ids.contains(&"jax_preallocate".to_string()), "{ids:?}");
    // vLLM: a utilization that fits what is free (15.32 GiB - 0.5 GiB) / 22.04 GiB = 0.67.
    let (_, ev) = fixes_of("(EngineCore pid=17635) ValueError: Free memory on device cuda:0 (15.32/22.04 GiB) on startup is less than desired GPU memory utilization (0.88, 19.39 GiB). Decrease GPU memory utilization or reduce GPU memory used by other processes.");
    assert_eq!(ev["causes"][0]["id"], "other_processes");
    let util = fix_by_id(&ev, "vllm_gpu_memory_utilization");
    assert!(
        util["code"]
            .as_str()
            .unwrap()
            .contains("--gpu-memory-utilization 0.67"),
        "{util}"
    );
    let (_, ev) = fixes_of("ValueError: To serve at least one request with the models's max seq len (262144), (24.00 GiB KV cache is needed, which is larger than the available KV cache memory (8.04 GiB). Based on the available memory, the estimated maximum model length is 87808. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.");
    assert_eq!(ev["causes"][0]["id"], "kv_cache");
    let len = fix_by_id(&ev, "vllm_max_model_len");
    assert!(
        len["code"]
            .as_str()
            .unwrap()
            .contains("--max-model-len 87808"),
        "{len}"
    );
    let (ids, ev) = fixes_of("ggml_backend_cuda_buffer_type_alloc_buffer: allocating 144817.04 MiB on device 0: cudaMalloc failed: out of memory\nalloc_tensor_range: failed to allocate CUDA0 buffer of size 151851674624\nllama_model_load: error loading model: unable to allocate CUDA0 buffer\n");
    assert_eq!(ev["memory"]["requested_bytes"], 151851674624u64);
    assert_eq!(ev["phase"], "model_load");
    assert_eq!(ids[0], "llama_n_gpu_layers");
}

#[test]
fn a_container_s_own_process_is_not_blamed() {
    // PyTorch in a container lists itself as "Process N"; it holds the
    // reserved 52.66 GiB plus a 0.5 GiB context.
    let (_, ev) = fixes_of("CUDA out of memory. Tried to allocate 35.60 GiB. GPU 0 has a total capacity of 79.33 GiB of which 26.16 GiB is free. Process 76883 has 53.16 GiB memory in use. Of the allocated memory 11.97 GiB is allocated by PyTorch, and 40.69 GiB is reserved by PyTorch but unallocated.");
    let causes: Vec<&str> = ev["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(causes[0], "fragmentation");
    assert!(!causes.contains(&"other_processes"), "{causes:?}");
    let out = oomguard(&["explain"], Some(b"CUDA out of memory. Tried to allocate 35.60 GiB. GPU 0 has a total capacity of 79.33 GiB of which 26.16 GiB is free. Process 76883 has 53.16 GiB memory in use. Of the allocated memory 11.97 GiB is allocated by PyTorch, and 40.69 GiB is reserved by PyTorch but unallocated."));
    assert!(
        out.stdout.contains("process 76883 is this process itself"),
        "{}",
        out.stdout
    );
}

/// The fix ids of one event of `--json` output.
fn fix_ids(event: &serde_json::Value) -> Vec<String> {
    event["fixes"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|x| x["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

const TRITON_CHAINED: &str = "triton.runtime.errors.OutOfResources: out of resource: shared memory, Required: 147456, Hardware limit: 101376. Reducing block sizes or `num_stages` may help.

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File \"train.py\", line 40, in <module>
    loss = compiled_model(batch).loss
torch._inductor.exc.InductorError: OutOfResources: out of resource: shared memory, Required: 147456, Hardware limit: 101376. Reducing block sizes or `num_stages` may help.
";

#[test]
fn triton_shared_memory_is_one_event_without_device_memory_or_batch_fix() {
    let out = oomguard(
        &["explain", "--json", "--batch", "32"],
        Some(TRITON_CHAINED.as_bytes()),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = out.json();
    let events = json["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "{}", out.stdout);
    let ev = &events[0];
    assert_eq!(ev["framework"], "other");
    assert_eq!(ev["device"]["kind"], "unknown");
    for (field, value) in ev["memory"].as_object().expect("memory") {
        assert!(value.is_null(), "memory.{field} = {value}");
    }
    assert_eq!(ev["causes"][0]["id"], "not_memory");
    let evidence = ev["causes"][0]["evidence"].as_str().unwrap_or_default();
    assert!(
        evidence.contains("147456 bytes of shared memory per block"),
        "{evidence}"
    );
    assert!(evidence.contains("RTX 30xx/40xx/50xx"), "{evidence}");
    let fixes = fix_ids(ev);
    assert_eq!(
        fixes.first().map(String::as_str),
        Some("triton_kernel_config")
    );
    assert!(!fixes.iter().any(|f| f.contains("batch")), "{fixes:?}");
    assert!(!out.stdout.contains("Reduce the batch"), "{}", out.stdout);
}

#[test]
fn sglang_pool_check_suggests_a_higher_fraction() {
    let out = oomguard(
        &["explain", "--json"],
        Some(b"RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. Current value: mem_fraction_static=0.8\n"),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = out.json();
    let ev = &json["events"][0];
    assert_eq!(ev["framework"], "other");
    assert_eq!(ev["device"]["kind"], "cuda");
    assert_eq!(ev["phase"], "startup");
    assert!(ev["memory"]["allowed_bytes"].is_null());
    assert_eq!(ev["causes"][0]["id"], "memory_cap");
    assert_eq!(ev["fixes"][0]["id"], "sglang_mem_fraction_static");
    let code = ev["fixes"][0]["code"].as_str().unwrap_or_default();
    assert!(code.contains("--mem-fraction-static 0.85"), "{code}");
    let fixes = fix_ids(ev);
    for id in [
        "sglang_tensor_parallel",
        "sglang_quantize",
        "stop_other_process",
        "sglang_kv_cache_dtype",
        "sglang_context_length",
    ] {
        assert!(fixes.iter().any(|f| f == id), "{id} missing from {fixes:?}");
    }
}

#[test]
fn accelerate_giving_up_stays_its_own_event_after_the_ooms_it_caught() {
    let oom = |size: &str| {
        format!("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {size}. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Including non-PyTorch memory, this process has 22.58 GiB memory in use. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 1.95 GiB is reserved by PyTorch but unallocated.\n")
    };
    let log = format!(
        "{}Decreasing batch size to: 64\n{}Decreasing batch size to: 32\nTraceback (most recent call last):\n  File \"/opt/conda/lib/python3.10/site-packages/accelerate/utils/memory.py\", line 134, in decorator\n    raise RuntimeError(\"No executable batch size found, reached zero.\")\nRuntimeError: No executable batch size found, reached zero.\n",
        oom("4.00 GiB"),
        oom("2.00 GiB")
    );
    let out = oomguard(&["explain", "--json", "--batch", "8"], Some(log.as_bytes()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = out.json();
    let events = json["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 3, "{}", out.stdout);
    let last = &events[2];
    assert_eq!(last["framework"], "pytorch");
    assert!(last["message"]
        .as_str()
        .unwrap_or_default()
        .starts_with("RuntimeError: No executable batch size found"));
    assert_eq!(last["causes"][0]["id"], "model_too_large");
    assert_eq!(last["causes"][1]["id"], "leftover_tensors");
    let fixes = fix_ids(last);
    assert!(fixes.iter().any(|f| f == "batch_finder_scope"), "{fixes:?}");
    assert!(!fixes.iter().any(|f| f == "reduce_batch"), "{fixes:?}");
}

#[test]
fn where_a_smaller_retry_cannot_help_the_workaround_says_so() {
    // The closing Workaround/Prevention lines follow the failure, not only
    // the framework: none of these three is cured by retrying smaller.
    let cases = [
        (TRITON_CHAINED.to_string(), "Triton · "),
        (
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static.\n"
                .to_string(),
            "SGLang · ",
        ),
        (
            "RuntimeError: No executable batch size found, reached zero.\n".to_string(),
            "PyTorch · ",
        ),
    ];
    for (text, header) in cases {
        let out = oomguard(&["explain"], Some(text.as_bytes()));
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains(header), "{}", out.stdout);
        let tail = &out.stdout[out.stdout.find("Workaround").expect("a workaround")..];
        assert!(!tail.contains("retry smaller"), "{tail}");
        assert!(
            !tail.contains("retry the step with a smaller batch"),
            "{tail}"
        );
    }
}

/// Events of `text`, as `explain --json` prints them.
fn events_of(text: &str) -> Vec<serde_json::Value> {
    let out = oomguard(&["explain", "--json"], Some(text.as_bytes()));
    out.json()["events"].as_array().cloned().unwrap_or_default()
}

#[test]
fn one_failure_told_several_ways_is_one_event() {
    // The same message again six lines on (a handler and stderr).
    let gap: String = (0..5)
        .map(|i| format!("  File \"x.py\", line {i}, in f\n"))
        .collect();
    let again = format!(
        "RuntimeError: CUDA error: out of memory\n{gap}RuntimeError: CUDA error: out of memory\n"
    );
    assert_eq!(events_of(&again).len(), 1);
    // XLA's log line, a long traceback, then the raised error: same figures.
    let frames: String = (0..40)
        .map(|i| format!("  File \"x.py\", line {i}, in f\n    y()\n"))
        .collect();
    let xla = format!(
        "2024-01-01 10:00:00.000000: E external/xla/xla/pjrt/pjrt_stream_executor_client.cc:2809] Execution of replica 0 failed: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8589934592 bytes.\nTraceback (most recent call last):\n{frames}jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8589934592 bytes.\n"
    );
    let events = events_of(&xla);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["line"], 1);
    // vLLM's engine core fails, the API server re-raises the same text.
    let vllm = format!(
        "(EngineCore_0 pid=12) ERROR 06-12 10:11:12 [core.py:1] {PT2}\n{frames}(APIServer pid=1) ERROR 06-12 10:11:13 [api.py:1] {PT2}\n"
    );
    assert_eq!(events_of(&vllm).len(), 1);
}

#[test]
fn a_traceback_line_is_never_glued_onto_the_error() {
    let text = format!(
        "  File \"train.py\", line 10, in step\n    loss = self.compute_loss_for_the_whole_batch_then_run_the_backward pass\n{PT2}\n"
    );
    let events = events_of(&text);
    assert_eq!(events.len(), 1);
    let message = events[0]["message"].as_str().unwrap();
    assert!(message.starts_with("torch.OutOfMemoryError"), "{message}");
}

#[test]
fn causes_carry_a_check_and_events_a_confidence() {
    let events = events_of("RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`\n");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["confidence"], "low");
    for cause in events[0]["causes"].as_array().unwrap() {
        assert!(cause["check"].is_string(), "{cause}");
    }
    let events = events_of(&format!("{PT2}\n"));
    assert!(["high", "medium", "low"].contains(&events[0]["confidence"].as_str().unwrap()));
}

/// An OOM inside the Trainer's evaluation loop gets the evaluation batch and
/// `eval_accumulation_steps`, not a smaller training batch.
#[test]
fn evaluation_oom_gets_the_evaluation_batch() {
    let text = "Traceback (most recent call last):\n  File \"/opt/conda/lib/python3.10/site-packages/transformers/trainer.py\", line 3826, in evaluation_loop\n    losses, logits, labels = self.prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)\n  File \"/opt/conda/lib/python3.10/site-packages/transformers/trainer.py\", line 4040, in prediction_step\n    outputs = model(**inputs)\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 3.82 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.20 GiB is free. Including non-PyTorch memory, this process has 22.44 GiB memory in use. Of the allocated memory 20.10 GiB is allocated by PyTorch, and 1.90 GiB is reserved by PyTorch but unallocated.\n";
    let out = oomguard(
        &["explain", "--json", "--batch", "16"],
        Some(text.as_bytes()),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ev = out.json()["events"][0].clone();
    assert_eq!(ev["phase"], "evaluation");
    assert_eq!(ev["fixes"][0]["id"], "reduce_eval_batch");
    let code = ev["fixes"][0]["code"].as_str().unwrap();
    // need 20.10 + 3.82, budget 20.10 + 1.90 + 1.20: 16 x 23.2 / 23.92 x 0.85 = 13.2
    assert!(code.contains("per_device_eval_batch_size=13"), "{code}");
    assert!(code.contains("eval_accumulation_steps"), "{code}");
    assert!(!ev["fixes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["id"] == "reduce_batch"));
}

/// A temporary of the multi-tensor (foreach) AdamW gets the fused optimizer,
/// right after the first fix.
#[test]
fn foreach_optimizer_temporary_gets_the_fused_optimizer() {
    let text = "  File \"/usr/lib/python3.10/site-packages/torch/optim/adamw.py\", line 606, in _multi_tensor_adamw\n    exp_avg_sq_sqrt = torch._foreach_sqrt(device_exp_avg_sqs)\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 130.00 MiB. GPU 0 has a total capacity of 94.99 GiB of which 87.19 MiB is free.\n";
    let (ids, ev) = fixes_of(text);
    assert_eq!(ev["phase"], "optimizer_step");
    assert_eq!(
        ids.iter().position(|i| i == "fused_optimizer"),
        Some(1),
        "{ids:?}"
    );
    assert!(fix_by_id(&ev, "fused_optimizer")["code"]
        .as_str()
        .unwrap()
        .contains("fused=True"));
}

/// vLLM's sampler warm-up OOM lowers max_num_seqs, not a training batch.
#[test]
fn vllm_sampler_warmup_lowers_max_num_seqs() {
    let (ids, ev) = fixes_of("RuntimeError: CUDA out of memory occurred when warming up sampler with 256 dummy requests. Please try lowering `max_num_seqs` or `gpu_memory_utilization` when initializing the engine.\n");
    assert_eq!(ids[0], "vllm_max_num_seqs", "{ids:?}");
    assert!(!ids.contains(&"reduce_batch".to_string()), "{ids:?}");
    assert!(ev["fixes"][0]["code"]
        .as_str()
        .unwrap()
        .contains("--max-num-seqs 128"));
}

/// A PyTorch OOM while TGI's launcher starts is its warm-up: the prefill
/// budget first, then the KV-cache budget, with the launcher's flags as the
/// fix instead of a training loader's batch.
#[test]
fn tgi_warm_up_speaks_the_launcher_s_token_budgets() {
    let text = "can't start server with small --max-total-tokens\n\nwhen I run text-generation-launcher --model-id /models/ --max-input-length 64 --max-total-tokens 128 it says\n\ntorch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 MiB. GPU  has a total capacity of 44.53 GiB of which 1.94 MiB is free. Of the allocated memory 40.92 GiB is allocated by PyTorch, and 754.08 MiB is reserved by PyTorch but unallocated.\n";
    let (ids, ev) = fixes_of(text);
    assert_eq!(ev["phase"], "startup");
    assert_eq!(ev["causes"][0]["id"], "batch_too_large", "{}", ev["causes"]);
    assert_eq!(ev["causes"][1]["id"], "kv_cache", "{}", ev["causes"]);
    assert_eq!(ids[0], "tgi_token_budget", "{ids:?}");
    assert!(!ids.contains(&"reduce_batch".to_string()), "{ids:?}");
    assert!(ev["fixes"][0]["code"]
        .as_str()
        .unwrap()
        .contains("--max-batch-prefill-tokens"));
}

/// A training OOM speaks the Trainer's knobs: the micro-batch with the
/// accumulation that keeps the effective batch, checkpointing and bf16.
#[test]
fn training_oom_speaks_the_trainer_s_arguments() {
    let text = "  File \"/opt/conda/lib/python3.10/site-packages/transformers/trainer.py\", line 3485, in training_step\n    loss = self.compute_loss(model, inputs)\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB of which 1.06 GiB is free. Of the allocated memory 20.12 GiB is allocated by PyTorch, and 1.95 GiB is reserved by PyTorch but unallocated.\n";
    let out = oomguard(
        &["explain", "--json", "--batch", "32"],
        Some(text.as_bytes()),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ev = out.json()["events"][0].clone();
    let batch = fix_by_id(&ev, "reduce_batch")["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        batch.contains("per_device_train_batch_size=")
            && batch.contains("gradient_accumulation_steps="),
        "{batch}"
    );
    let mp = fix_by_id(&ev, "mixed_precision_checkpointing");
    assert!(
        mp["code"]
            .as_str()
            .unwrap()
            .contains("TrainingArguments(gradient_checkpointing=True, bf16=True)"),
        "{mp}"
    );
}

/// A torchrun job of four ranks: ranks 1 and 3 run out of memory in the
/// backward pass, ranks 0 and 2 then wait in their all-reduce until PyTorch's
/// NCCL watchdog gives up (ProcessGroupNCCL.cpp's wording of 2.4+, with the
/// exception's repeat of it on rank 2).
fn torchrun_log() -> String {
    let mut log =
        String::from("[rank1]:[W1206 18:33:02.1 ProcessGroupNCCL.cpp:4115] Warning: benign\n");
    for rank in [1, 3] {
        log.push_str(&format!(
            "[rank{rank}]: Traceback (most recent call last):\n[rank{rank}]:   File \"/workspace/train.py\", line 210, in <module>\n[rank{rank}]:     loss.backward()\n[rank{rank}]: {}\n",
            PT2.replace("GPU 0", &format!("GPU {rank}"))
        ));
    }
    log.push_str("W1206 18:34:02.000000 140 torch/distributed/elastic/multiprocessing/api.py:897] Sending process 141 closing signal SIGTERM\n");
    for rank in [0, 2] {
        log.push_str(&format!("[rank{rank}]:[E1206 18:44:12.715298746 ProcessGroupNCCL.cpp:607] [Rank {rank}] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=7753, OpType=ALLREDUCE, NumelIn=544997376, NumelOut=544997376, Timeout(ms)=600000) ran for 60006{rank} milliseconds before timing out.\n"));
        log.push_str(&format!("[rank{rank}]:[E1206 18:44:12.715588844 ProcessGroupNCCL.cpp:1664] [PG 1 Rank {rank}] Exception (either an error or timeout) detected by watchdog at work: 7753, last enqueued NCCL work: 7755, last completed NCCL work: 7752.\n"));
    }
    log.push_str("[rank2]:  what():  [PG ID 0 PG GUID 0(default_pg) Rank 2] Process group watchdog thread terminated with exception: [Rank 2] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=7753, OpType=ALLREDUCE, NumelIn=544997376, NumelOut=544997376, Timeout(ms)=600000) ran for 600062 milliseconds before timing out.\n");
    log
}

#[test]
fn a_multi_rank_oom_keeps_its_ranks_and_the_timeouts_that_followed() {
    let log = torchrun_log();
    let out = oomguard(&["explain", "--json"], Some(log.as_bytes()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let json = out.json();
    let events = json["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{}", out.stdout);
    assert_eq!(events[0]["ranks"], serde_json::json!([1, 3]));
    assert_eq!(events[0]["device"]["index"], 1);
    let timeouts = json["watchdog_timeouts"].as_array().unwrap();
    // One per rank and collective: rank 2's exception repeats its timeout.
    assert_eq!(timeouts.len(), 2, "{timeouts:?}");
    assert_eq!(timeouts[0]["rank"], 0);
    assert_eq!(timeouts[0]["line"], 11);
    assert_eq!(timeouts[0]["op_type"], "ALLREDUCE");
    assert_eq!(timeouts[0]["seq_num"], 7753);
    assert_eq!(timeouts[0]["timeout_ms"], 600000);
    assert_eq!(timeouts[0]["ran_for_ms"], 600060);
    assert_eq!(timeouts[1]["rank"], 2);

    let out = oomguard(&["explain"], Some(log.as_bytes()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("Ranks 1 and 3 ran out of memory (rank 1 on GPU 1 and rank 3 on GPU 3); NCCL watchdog timeouts followed on ranks 0 and 2"),
        "{}",
        out.stdout
    );
}

#[test]
fn rank_prefixes_of_slurm_and_open_mpi_are_read() {
    for (prefix, rank) in [("2: ", 2), ("[1,3]<stderr>:", 3), ("[default5]:", 5)] {
        let log = format!("{prefix}{PT2}\n");
        let out = oomguard(&["explain", "--json"], Some(log.as_bytes()));
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(
            out.json()["events"][0]["ranks"],
            serde_json::json!([rank]),
            "{prefix}"
        );
    }
}

#[test]
fn without_rank_prefixes_ranks_are_null_and_timeouts_alone_are_no_event() {
    let out = oomguard(&["explain", "--json"], Some(format!("{PT2}\n").as_bytes()));
    let json = out.json();
    assert_eq!(json["events"][0]["ranks"], serde_json::Value::Null);
    assert_eq!(json["watchdog_timeouts"], serde_json::json!([]));
    assert!(!oomguard(&["explain"], Some(format!("{PT2}\n").as_bytes()))
        .stdout
        .contains("ran out of memory (rank"));

    // Timeouts without any OOM: listed, but no event (exit 1).
    let log = "[E ProcessGroupNCCL.cpp:737] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=469508, OpType=ALLREDUCE, Timeout(ms)=1800000) ran for 1802212 milliseconds before timing out.\n";
    let out = oomguard(&["explain", "--json"], Some(log.as_bytes()));
    assert_eq!(out.code, 1);
    let json = out.json();
    assert_eq!(json["events"], serde_json::json!([]));
    assert_eq!(json["watchdog_timeouts"][0]["rank"], 1);
    assert_eq!(json["watchdog_timeouts"][0]["timeout_ms"], 1800000);
}

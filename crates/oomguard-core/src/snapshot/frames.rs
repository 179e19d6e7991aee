//! Folding an allocation's stack to the line a user would change: the
//! innermost frame in the user's own code, not in torch, the Python
//! standard library, an installed package (site-packages, dist-packages),
//! code TorchInductor generated, or C++.
//!
//! PyTorch records frames innermost first (`torch/cuda/_memory_viz.py`
//! reverses them for flame graphs); with `stacks="all"` C++ frames are
//! mixed in, with a `.cpp`/`.h` file or `??` as file name.

/// What a frame's file says about whose code it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameClass {
    /// Python code of the user's own.
    User,
    /// Python code in torch, the standard library or an installed package.
    Library,
    /// C++ (or unknown) frames: no Python source file.
    Native,
}

/// Classifies a frame by its file name.
pub fn classify(filename: &str) -> FrameClass {
    let path = filename.replace('\\', "/");
    let python = path.ends_with(".py") || (path.starts_with('<') && !path.starts_with("<frozen"));
    if path.starts_with("<frozen") {
        return FrameClass::Library;
    }
    if !python {
        return FrameClass::Native;
    }
    let library = path.contains("/site-packages/")
        || path.contains("/dist-packages/")
        || path.starts_with("torch/")
        || path.contains("/torch/")
        || path.contains("/torchinductor_")
        || is_standard_library(&path);
    if library {
        FrameClass::Library
    } else {
        FrameClass::User
    }
}

/// A file of the Python standard library: `.../lib/python3.X/...` (Unix,
/// conda, pyenv) or `.../Lib/...` (Windows), outside installed packages.
fn is_standard_library(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower
        .split('/')
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] == "lib" && (w[1].starts_with("python2") || w[1].starts_with("python3")))
        || lower.contains("/lib/python/")
        || (path.contains("/Lib/") && !path.contains("site-packages"))
}

/// One frame as PyTorch records it.
#[derive(Debug, Clone, Copy)]
pub struct FrameRef<'a> {
    pub filename: &'a str,
    pub line: i64,
    pub name: &'a str,
    pub class: FrameClass,
}

/// How a frame is shown: `file:line (function)`.
pub fn site_label(f: &FrameRef) -> String {
    format!("{}:{} ({})", f.filename, f.line, f.name)
}

/// The label of the stack's allocation site: its innermost user frame; else
/// `<backward pass>` when the autograd engine made it (gradients have no
/// Python frame); else its innermost library Python frame; else a marker.
pub fn fold(frames: &[FrameRef]) -> String {
    if frames.is_empty() {
        return NO_STACK.to_string();
    }
    if let Some(f) = frames.iter().find(|f| f.class == FrameClass::User) {
        return site_label(f);
    }
    if frames
        .iter()
        .any(|f| f.name.contains("autograd::Engine") || f.filename.contains("autograd/engine"))
    {
        return "<backward pass (autograd engine)>".to_string();
    }
    if let Some(f) = frames.iter().find(|f| f.class == FrameClass::Library) {
        return site_label(f);
    }
    "<C++ only>".to_string()
}

/// The site of allocations recorded without a stack (before
/// `_record_memory_history`, or with `context=None`).
pub const NO_STACK: &str = "<no stack recorded>";

#[cfg(test)]
mod tests {
    use super::*;

    fn f(filename: &'static str, line: i64, name: &'static str) -> FrameRef<'static> {
        FrameRef {
            filename,
            line,
            name,
            class: classify(filename),
        }
    }

    #[test]
    fn classifies_library_user_and_native_files() {
        use FrameClass::*;
        for (file, class) in [
            (
                "/opt/conda/lib/python3.11/site-packages/torch/nn/modules/linear.py",
                Library,
            ),
            (
                "/usr/lib/python3/dist-packages/transformers/trainer.py",
                Library,
            ),
            ("/usr/lib/python3.10/runpy.py", Library),
            ("C:\\Python311\\Lib\\threading.py", Library),
            ("<frozen runpy>", Library),
            ("/home/me/pytorch/torch/autograd/__init__.py", Library),
            ("/tmp/torchinductor_me/ab/cabc.py", Library),
            ("/home/me/train.py", User),
            ("train.py", User),
            ("/tmp/ipykernel_12/3456.py", User),
            ("<ipython-input-3-abc>", User),
            ("/pytorch/c10/cuda/CUDACachingAllocator.cpp", Native),
            ("??", Native),
            ("", Native),
        ] {
            assert_eq!(classify(file), class, "{file}");
        }
    }

    #[test]
    fn folds_to_the_innermost_user_frame() {
        let stack = [
            f("/x/site-packages/torch/nn/functional.py", 2000, "linear"),
            f(
                "/x/site-packages/torch/nn/modules/linear.py",
                116,
                "forward",
            ),
            f("/home/me/model.py", 42, "forward"),
            f("/home/me/train.py", 90, "main"),
        ];
        assert_eq!(fold(&stack), "/home/me/model.py:42 (forward)");
    }

    #[test]
    fn falls_back_without_a_user_frame() {
        assert_eq!(fold(&[]), NO_STACK);
        let backward = [
            f("??", 0, "at::empty_strided"),
            f("??", 0, "torch::autograd::Engine::thread_main"),
        ];
        assert_eq!(fold(&backward), "<backward pass (autograd engine)>");
        let lib = [
            f("??", 0, "x"),
            f("/x/site-packages/torch/optim/adam.py", 9, "step"),
        ];
        assert_eq!(fold(&lib), "/x/site-packages/torch/optim/adam.py:9 (step)");
        assert_eq!(fold(&[f("??", 0, "x")]), "<C++ only>");
    }
}

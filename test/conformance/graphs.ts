/**
 * The graph shapes of Metaflow's core test suite (Netflix/metaflow, test/core/graphs/*.json,
 * Apache-2.0), unchanged: each node is linear, a branch, a foreach (with the default of its
 * foreach variable, as Python source that is also valid JavaScript) or a switch, with the
 * qualifiers that pick which test step fills it.
 */
export interface GraphNode {
  linear?: string;
  branch?: string[];
  foreach?: string;
  foreach_var?: string;
  foreach_var_default?: string;
  switch?: Record<string, string>;
  condition?: string;
  join?: boolean;
  quals?: string[];
  parallel?: string;
  num_parallel?: number;
  parallel_step?: boolean;
}

export const GRAPHS: Record<string, Record<string, GraphNode>> = {
  "single-and-branch": {
    "start": {
      "branch": [
        "a",
        "b"
      ],
      "quals": [
        "split-and"
      ]
    },
    "a": {
      "linear": "join",
      "quals": [
        "single-branch-split"
      ]
    },
    "b": {
      "linear": "join",
      "quals": [
        "single-branch-split"
      ]
    },
    "join": {
      "linear": "end",
      "join": true,
      "quals": [
        "join-and"
      ]
    },
    "end": {}
  },
  "branch_in_switch": {
    "start": {
      "switch": {
        "process": "process_branch",
        "skip": "skip_path"
      },
      "condition": "mode",
      "quals": [
        "start-branch-in-switch"
      ]
    },
    "process_branch": {
      "branch": [
        "p1",
        "p2"
      ],
      "quals": [
        "process-path"
      ]
    },
    "p1": {
      "linear": "process_join",
      "quals": [
        "p1"
      ]
    },
    "p2": {
      "linear": "process_join",
      "quals": [
        "p2"
      ]
    },
    "process_join": {
      "linear": "end",
      "join": true,
      "quals": [
        "process-join"
      ]
    },
    "skip_path": {
      "linear": "end",
      "quals": [
        "skip-path"
      ]
    },
    "end": {
      "quals": [
        "end-branch-in-switch"
      ]
    }
  },
  "simple-foreach": {
    "start": {
      "linear": "foreach_split"
    },
    "foreach_split": {
      "foreach": "foreach_inner_first",
      "foreach_var": "arr",
      "foreach_var_default": "[1, 2, 3]",
      "quals": [
        "foreach-split"
      ]
    },
    "foreach_inner_first": {
      "linear": "foreach_inner_second",
      "quals": [
        "foreach-inner"
      ]
    },
    "foreach_inner_second": {
      "linear": "foreach_join",
      "quals": [
        "foreach-inner"
      ]
    },
    "foreach_join": {
      "linear": "end",
      "join": true,
      "quals": [
        "foreach-join"
      ]
    },
    "end": {}
  },
  "foreach_in_switch": {
    "start": {
      "switch": {
        "process": "process_items",
        "skip": "skip_processing"
      },
      "condition": "mode",
      "quals": [
        "start-foreach-in-switch"
      ]
    },
    "process_items": {
      "foreach": "do_work",
      "foreach_var": "items_to_process",
      "foreach_var_default": "['item_1', 'item_2']",
      "quals": [
        "process-items"
      ]
    },
    "do_work": {
      "linear": "join_work",
      "quals": [
        "do-work"
      ]
    },
    "join_work": {
      "linear": "end",
      "join": true,
      "quals": [
        "join-work"
      ]
    },
    "skip_processing": {
      "linear": "end",
      "quals": [
        "skip-processing"
      ]
    },
    "end": {
      "quals": [
        "end-foreach-in-switch"
      ]
    }
  },
  "single-linear-step": {
    "start": {
      "linear": "a",
      "quals": [
        "singleton-start"
      ]
    },
    "a": {
      "linear": "end",
      "quals": [
        "singleton"
      ]
    },
    "end": {
      "quals": [
        "singleton-end"
      ]
    }
  },
  "nested-branches": {
    "start": {
      "branch": [
        "a",
        "b"
      ],
      "quals": [
        "split-and"
      ]
    },
    "a": {
      "branch": [
        "aa",
        "ab"
      ],
      "quals": [
        "split-and"
      ]
    },
    "b": {
      "branch": [
        "ba",
        "bb"
      ],
      "quals": [
        "split-and"
      ]
    },
    "aa": {
      "branch": [
        "aaa",
        "aab"
      ],
      "quals": [
        "split-and"
      ]
    },
    "ab": {
      "branch": [
        "aba",
        "abb"
      ],
      "quals": [
        "split-and"
      ]
    },
    "ba": {
      "branch": [
        "baa",
        "bab"
      ],
      "quals": [
        "split-and"
      ]
    },
    "bb": {
      "branch": [
        "bba",
        "bbb"
      ],
      "quals": [
        "split-and"
      ]
    },
    "aaa": {
      "linear": "aaa_aab_join"
    },
    "aab": {
      "linear": "aaa_aab_join"
    },
    "aba": {
      "linear": "aba_abb_join"
    },
    "abb": {
      "linear": "aba_abb_join"
    },
    "baa": {
      "linear": "baa_bab_join"
    },
    "bab": {
      "linear": "baa_bab_join"
    },
    "bba": {
      "linear": "bba_bbb_join"
    },
    "bbb": {
      "linear": "bba_bbb_join"
    },
    "aaa_aab_join": {
      "linear": "aa_ab_join",
      "join": true,
      "quals": [
        "join-and"
      ]
    },
    "aba_abb_join": {
      "linear": "aa_ab_join",
      "join": true,
      "quals": [
        "join-and"
      ]
    },
    "baa_bab_join": {
      "linear": "ba_bb_join",
      "join": true,
      "quals": [
        "join-and"
      ]
    },
    "bba_bbb_join": {
      "linear": "ba_bb_join",
      "join": true,
      "quals": [
        "join-and"
      ]
    },
    "aa_ab_join": {
      "linear": "a_b_join",
      "join": true,
      "quals": [
        "join-and"
      ]
    },
    "ba_bb_join": {
      "linear": "a_b_join",
      "join": true,
      "quals": [
        "join-and"
      ]
    },
    "a_b_join": {
      "linear": "end",
      "join": true,
      "quals": [
        "join-and"
      ]
    },
    "end": {}
  },
  "nested-foreach": {
    "start": {
      "linear": "foreach_split_x"
    },
    "foreach_split_x": {
      "foreach": "foreach_split_y",
      "foreach_var": "x",
      "foreach_var_default": "'abc'",
      "quals": [
        "foreach-split"
      ]
    },
    "foreach_split_y": {
      "foreach": "foreach_split_z",
      "foreach_var": "y",
      "foreach_var_default": "'de'",
      "quals": [
        "foreach-split"
      ]
    },
    "foreach_split_z": {
      "foreach": "foreach_inner",
      "foreach_var": "z",
      "foreach_var_default": "'fghijk'",
      "quals": [
        "foreach-nested-split",
        "foreach-split"
      ]
    },
    "foreach_inner": {
      "linear": "foreach_join_z",
      "quals": [
        "foreach-nested-inner",
        "foreach-inner"
      ]
    },
    "foreach_join_z": {
      "linear": "foreach_join_y",
      "join": true,
      "quals": [
        "foreach-nested-join"
      ]
    },
    "foreach_join_y": {
      "linear": "foreach_join_x",
      "join": true
    },
    "foreach_join_x": {
      "linear": "end",
      "join": true
    },
    "end": {}
  },
  "small-parallel": {
    "start": {
      "linear": "parallel_split",
      "quals": [
        "start"
      ]
    },
    "parallel_split": {
      "num_parallel": 4,
      "parallel": "parallel_inner",
      "quals": [
        "parallel-split"
      ]
    },
    "parallel_inner": {
      "linear": "parallel_join",
      "quals": [
        "parallel-step"
      ],
      "parallel_step": true
    },
    "parallel_join": {
      "linear": "end",
      "join": true,
      "quals": [
        "parallel-join"
      ]
    },
    "end": {}
  },
  "recursive_switch": {
    "start": {
      "linear": "loop_step",
      "quals": [
        "start"
      ]
    },
    "loop_step": {
      "switch": {
        "continue": "loop_step",
        "exit": "exit_loop"
      },
      "condition": "loop_status",
      "quals": [
        "loop"
      ]
    },
    "exit_loop": {
      "linear": "end",
      "quals": [
        "exit"
      ]
    },
    "end": {
      "quals": [
        "end"
      ]
    }
  },
  "recursive_switch_inside_foreach": {
    "start": {
      "foreach": "start_loop_for_item",
      "foreach_var": "items",
      "foreach_var_default": "[]",
      "quals": [
        "start"
      ]
    },
    "start_loop_for_item": {
      "linear": "loop_body",
      "quals": [
        "loop_start"
      ]
    },
    "loop_body": {
      "switch": {
        "True": "loop_body",
        "False": "exit_item_loop"
      },
      "condition": "should_continue",
      "quals": [
        "loop_body"
      ]
    },
    "exit_item_loop": {
      "linear": "join",
      "quals": [
        "loop_exit"
      ]
    },
    "join": {
      "linear": "end",
      "join": true,
      "quals": [
        "join-foreach"
      ]
    },
    "end": {
      "quals": [
        "end"
      ]
    }
  },
  "small-foreach": {
    "start": {
      "linear": "foreach_split"
    },
    "foreach_split": {
      "foreach": "foreach_inner",
      "foreach_var": "arr",
      "foreach_var_default": "[1, 2, 3]",
      "quals": [
        "foreach-split-small",
        "foreach-split"
      ]
    },
    "foreach_inner": {
      "linear": "foreach_join",
      "quals": [
        "foreach-inner-small"
      ]
    },
    "foreach_join": {
      "linear": "end",
      "join": true,
      "quals": [
        "foreach-join-small"
      ]
    },
    "end": {}
  },
  "simple_switch": {
    "start": {
      "linear": "switch_step",
      "quals": [
        "start"
      ]
    },
    "switch_step": {
      "switch": {
        "case1": "a",
        "case2": "b",
        "case3": "c"
      },
      "condition": "condition",
      "quals": [
        "switch-simple"
      ]
    },
    "a": {
      "linear": "end",
      "quals": [
        "path-a"
      ]
    },
    "b": {
      "linear": "end",
      "quals": [
        "path-b"
      ]
    },
    "c": {
      "linear": "end",
      "quals": [
        "path-c"
      ]
    },
    "end": {
      "quals": [
        "end"
      ]
    }
  },
  "switch_in_branch": {
    "start": {
      "branch": [
        "a",
        "b"
      ],
      "quals": [
        "start-split"
      ]
    },
    "a": {
      "switch": {
        "case1": "c",
        "case2": "d"
      },
      "condition": "condition",
      "quals": [
        "switch-a"
      ]
    },
    "b": {
      "linear": "join",
      "quals": [
        "branch-b"
      ]
    },
    "c": {
      "linear": "join",
      "quals": [
        "branch-c"
      ]
    },
    "d": {
      "linear": "join",
      "quals": [
        "branch-d"
      ]
    },
    "join": {
      "linear": "end",
      "join": true,
      "quals": [
        "join"
      ]
    },
    "end": {
      "quals": [
        "end"
      ]
    }
  },
  "switch_in_foreach": {
    "start": {
      "foreach": "process_item",
      "foreach_var": "items",
      "foreach_var_default": "[]",
      "quals": [
        "start-foreach"
      ]
    },
    "process_item": {
      "switch": {
        "type_a": "handle_a",
        "type_b": "handle_b"
      },
      "condition": "item_type",
      "quals": [
        "process-item"
      ]
    },
    "handle_a": {
      "linear": "join",
      "quals": [
        "handle-a"
      ]
    },
    "handle_b": {
      "linear": "join",
      "quals": [
        "handle-b"
      ]
    },
    "join": {
      "linear": "end",
      "join": true,
      "quals": [
        "join-foreach"
      ]
    },
    "end": {
      "quals": [
        "end"
      ]
    }
  },
  "nested_switch": {
    "start": {
      "switch": {
        "case1": "switch2",
        "case2": "b"
      },
      "condition": "condition1",
      "quals": [
        "start-nested"
      ]
    },
    "switch2": {
      "switch": {
        "case2_1": "c",
        "case2_2": "d"
      },
      "condition": "condition2",
      "quals": [
        "switch-nested"
      ]
    },
    "b": {
      "linear": "end",
      "quals": [
        "path-b"
      ]
    },
    "c": {
      "linear": "end",
      "quals": [
        "path-c-nested"
      ]
    },
    "d": {
      "linear": "end",
      "quals": [
        "path-d-nested"
      ]
    },
    "end": {
      "quals": [
        "end-nested"
      ]
    }
  }
};
